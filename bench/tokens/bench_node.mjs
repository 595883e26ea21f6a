// The npm tiktoken package (WASM) on the same files, same measurement:
// best of 5 runs of >= 0.3 s of CPU time, MB/s of encode_ordinary over the
// decoded text (CPU time: the machine may be shared).
//   node bench_node.mjs ENCODING FILE...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.env.TIKTOKEN_DIR + "/");
const { get_encoding } = require("tiktoken");

const [encName, ...files] = process.argv.slice(2);
const enc = get_encoding(encName);
for (const f of files) {
  const bytes = readFileSync(f);
  const text = new TextDecoder().decode(bytes);
  let best = 1e9, tokens = 0;
  for (let round = 0; round < 5; round++) {
    let reps = 0;
    const t0 = process.cpuUsage();
    let t;
    do {
      tokens = enc.encode_ordinary(text).length;
      reps++;
      const u = process.cpuUsage(t0);
      t = (u.user + u.system) / 1e6;
    } while (t < 0.3);
    best = Math.min(best, t / reps);
  }
  console.log(JSON.stringify({ encoding: encName, file: f, bytes: bytes.length, tokens,
                               mb_s: +(bytes.length / best / 1e6).toFixed(4) }));
}
enc.free();
