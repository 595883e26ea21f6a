// Drives sluice's Files and Batches API with the official openai npm
// client: upload a JSONL, create a batch, poll it, download the results,
// list batches page by page, and see another tenant's 404 as NotFoundError.
// Usage: node batch_test.mjs http://127.0.0.1:PORT/v1 KEY OTHER_TENANT_KEY
import OpenAI, { toFile } from "openai";
import assert from "node:assert/strict";

const [base, key, otherKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0 });
const other = new OpenAI({ baseURL: base, apiKey: otherKey, maxRetries: 0 });

const N = 12;
const lines = [];
for (let i = 0; i < N; i++)
  lines.push(JSON.stringify({
    custom_id: `req-${i}`, method: "POST", url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `question ${i}` }] },
  }));
const file = await client.files.create({
  file: await toFile(Buffer.from(lines.join("\n") + "\n"), "questions.jsonl"),
  purpose: "batch",
});
assert.equal(file.object, "file");
assert.equal(file.purpose, "batch");
assert.equal(file.filename, "questions.jsonl");
console.log("upload ok", file.id);

const got = await client.files.retrieve(file.id);
assert.equal(got.bytes, file.bytes);

let batch = await client.batches.create({
  input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h",
  metadata: { owner: "node" },
});
assert.equal(batch.object, "batch");
assert.equal(batch.status, "validating");
for (let i = 0; i < 600 && !["completed", "failed", "expired", "cancelled"].includes(batch.status); i++) {
  await new Promise((r) => setTimeout(r, 100));
  batch = await client.batches.retrieve(batch.id);
}
assert.equal(batch.status, "completed");
assert.deepEqual(batch.request_counts, { total: N, completed: N, failed: 0 });
assert.equal(batch.metadata.owner, "node");
console.log("batch ok", batch.id);

const res = await client.files.content(batch.output_file_id);
const out = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
assert.equal(out.length, N);
const byId = Object.fromEntries(out.map((o) => [o.custom_id, o]));
for (let i = 0; i < N; i++) {
  const o = byId[`req-${i}`];
  assert.equal(o.response.status_code, 200);
  assert.equal(o.response.body.choices[0].message.content, `mock reply to: question ${i}`);
}
console.log("results ok");

// A second and third batch, then list them two per page.
for (let k = 0; k < 2; k++)
  await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
const seen = [];
for await (const b of client.batches.list({ limit: 2 })) seen.push(b.id);
assert.equal(seen.length, 3);
assert.equal(new Set(seen).size, 3);
assert.equal(seen[2], batch.id, "newest first");
console.log("list ok");

await assert.rejects(other.batches.retrieve(batch.id), (e) => e.status === 404 && e instanceof OpenAI.NotFoundError);
await assert.rejects(other.files.content(batch.output_file_id), (e) => e.status === 404);
await assert.rejects(
  client.files.create({ file: await toFile(Buffer.from("{broken\n"), "bad.jsonl"), purpose: "batch" }),
  (e) => e.status === 400 && /line 1/.test(e.message));
console.log("errors ok");

const del = await client.files.del(file.id);
assert.equal(del.deleted, true);
console.log("all ok");
