// Drives sluice with the official openai npm client: chat, streaming,
// embeddings, and a 429 surfacing as the client's RateLimitError.
// Usage: node client_test.mjs http://127.0.0.1:PORT/v1
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-test-client", maxRetries: 0 });

const chat = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Hello from the openai client" }],
});
assert.equal(chat.object, "chat.completion");
assert.ok(chat.choices[0].message.content.length > 0);
assert.ok(chat.usage.total_tokens > 0);
console.log("chat ok");

const stream = await client.chat.completions.create({
  model: "gpt-4o-mini",
  stream: true,
  messages: [{ role: "user", content: "stream please" }],
});
let text = "";
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  text += chunk.choices[0]?.delta?.content ?? "";
}
assert.ok(chunks >= 2, `chunks: ${chunks}`);
assert.ok(text.length > 0);
console.log("stream ok", chunks, "chunks");

const emb = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a b c", "a b d"] });
assert.equal(emb.data.length, 2);
assert.ok(emb.data[0].embedding.length > 0);
console.log("embeddings ok");

// The policy in the test config rejects this model with 429.
try {
  await client.chat.completions.create({ model: "limited-model", messages: [{ role: "user", content: "x" }] });
  assert.fail("expected a RateLimitError");
} catch (e) {
  assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e?.message}`);
  assert.equal(e.status, 429);
  assert.equal(e.headers["retry-after"], "7");
  console.log("429 ok:", e.message);
}
console.log("all ok");
