// Reads one streamed chat completion (temperature 0, so the cache plugin
// may answer it) with the official openai client and prints what it parsed
// as JSON: the x-sluice-cache header, the text, finish reason, usage and
// chunk ids.
// Usage: node cache_stream.mjs BASE_URL CONTENT USAGE(0|1)
import OpenAI from "openai";

const [baseURL, content, usageFlag] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test-client", maxRetries: 0 });
const params = {
  model: "gpt-4o-mini",
  stream: true,
  temperature: 0,
  messages: [{ role: "user", content }],
};
if (usageFlag === "1") params.stream_options = { include_usage: true };

const { data: stream, response } = await client.chat.completions
  .create(params)
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
console.log(JSON.stringify({
  contentType: response.headers.get("content-type"),
  cache: response.headers.get("x-sluice-cache"),
  chunks, ids: [...ids], text, finish, usage,
}));
