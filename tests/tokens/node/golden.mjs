// Golden ids from the npm tiktoken package: for each NUL-separated chunk of
// FILE, decoded as Node decodes bytes (invalid UTF-8 -> U+FFFD), prints
// "count id id ..." per line, as tests/tokens/tok_tool does.
//   node golden.mjs ENCODING FILE
import { readFileSync } from "node:fs";
import { get_encoding } from "tiktoken";

const [encName, file] = process.argv.slice(2);
const enc = get_encoding(encName);
const data = readFileSync(file);
const decoder = new TextDecoder("utf-8");
const out = [];
let start = 0;
for (;;) {
  let end = data.indexOf(0, start);
  if (end < 0) end = data.length;
  const ids = enc.encode_ordinary(decoder.decode(data.subarray(start, end)));
  out.push(ids.length + (ids.length ? " " + Array.from(ids).join(" ") : ""));
  if (end >= data.length) break;
  start = end + 1;
}
process.stdout.write(out.join("\n") + "\n");
enc.free();
