// Reads one streamed chat completion with the official openai client and
// prints what it parsed as JSON: the raw chunks' text, finish reason and
// usage, and the helper's assembled final completion (the same code path
// applications use to collect tool calls).
// Usage: node stream_replay.mjs BASE_URL '{"x-probe-replay":"stored"}' USAGE(0|1)
import OpenAI from "openai";

const [baseURL, headersJson, usageFlag] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test-client", maxRetries: 0 });
const params = {
  model: "gpt-4o-mini",
  stream: true,
  messages: [{ role: "user", content: "replay this answer please" }],
};
if (usageFlag === "1") params.stream_options = { include_usage: true };
const options = { headers: JSON.parse(headersJson) };

// The plain iterator: what most applications do.
const { data: stream, response } = await client.chat.completions
  .create(params, options)
  .withResponse();
let text = "", finish = null, usage = null, chunks = 0, ids = new Set();
for await (const chunk of stream) {
  chunks++;
  ids.add(chunk.id);
  for (const c of chunk.choices) {
    text += c.delta?.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}

// The stream helper: merges tool-call deltas and checks the chunk shapes.
const runner = client.beta.chat.completions.stream(params, options);
const final = await runner.finalChatCompletion();

console.log(JSON.stringify({
  contentType: response.headers.get("content-type"),
  coalesced: response.headers.get("x-sluice-coalesced"),
  chunks, ids: [...ids], text, finish, usage, final,
}));
