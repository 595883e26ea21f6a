// Reference counts for chat requests, independent of the C code: tiktoken
// ids plus the openai-cookbook framing (3 per message, every string value
// of a message, 1 more per name, 3 to prime the reply). Text-only messages.
//   node count_chat.mjs ENCODING FILE   (FILE: a JSON array of requests)
import { readFileSync } from "node:fs";
import { get_encoding } from "tiktoken";

const [encName, file] = process.argv.slice(2);
const enc = get_encoding(encName);
const counts = JSON.parse(readFileSync(file, "utf8")).map((req) => {
  let n = 3;
  for (const m of req.messages) {
    n += 3;
    for (const [k, v] of Object.entries(m)) {
      n += enc.encode_ordinary(v).length;
      if (k === "name") n += 1;
    }
  }
  return n;
});
console.log(JSON.stringify(counts));
enc.free();
