// frugal serve driven by the official `openai` npm package: non-stream,
// stream, a knowledge-cache model, structured output (with the zod helper),
// tools and errors. ctest runs it (test
// server_openai_js); scripts/setup.sh installs the package here.
//   node run.mjs FRUGAL_BINARY MODEL.gguf DOCS_FOLDER
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import OpenAI from "openai";
import { zodFunction, zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { startFrugalServe } from "../start_frugal_serve.mjs";

const [frugal, model, docs] = process.argv.slice(2);
const kb = join(mkdtempSync(join(tmpdir(), "frugal-openai-")), "town.fkv");
const build = spawnSync(frugal, ["kb", "build", "-q", "-m", model, "-t", "2", "--docs", docs, "-o", kb, "-c", "1024"]);
assert.equal(build.status, 0, `kb build failed: ${build.stderr}`);
const { server, port } = await startFrugalServe(frugal, ["-m", model, "-t", "2", "--name", "mini", "--kb", `town=${kb}`,
                                                     "--api-key", "secret"]);

try {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "secret", maxRetries: 0 });

  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ["mini", "mini@town"]);

  const messages = [{ role: "user", content: "Name a colour." }];
  const answer = await client.chat.completions.create({ model: "mini", messages, max_tokens: 10, temperature: 0 });
  assert.equal(answer.object, "chat.completion");
  assert.equal(answer.choices[0].message.role, "assistant");
  assert.ok(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0);

  const stream = await client.chat.completions.create({ model: "mini", messages, max_tokens: 10, temperature: 0,
                                                        stream: true });
  let streamed = "";
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(streamed, answer.choices[0].message.content, "stream and non-stream answers differ");
  // stream_options.include_usage: a last chunk with no choices and the usage.
  const counted = await client.chat.completions.create({ model: "mini", messages, max_tokens: 10, temperature: 0,
                                                         stream: true, stream_options: { include_usage: true } });
  let usage = null;
  for await (const chunk of counted) if (chunk.usage) usage = chunk.usage;
  assert.deepEqual(usage && [usage.prompt_tokens, usage.completion_tokens],
                   [answer.usage.prompt_tokens, answer.usage.completion_tokens]);

  const completion = await client.completions.create({ model: "mini", prompt: "Once upon a time", max_tokens: 6,
                                                      temperature: 0 });
  assert.equal(completion.object, "text_completion");

  // logprobs, non-stream and stream: one entry per answer token, the text's pieces.
  const scored = await client.chat.completions.create({ model: "mini", messages, max_tokens: 10, temperature: 0,
                                                        logprobs: true, top_logprobs: 2 });
  const content = scored.choices[0].logprobs.content;
  assert.equal(content.map((t) => t.token).join(""), scored.choices[0].message.content);
  assert.ok(content.every((t) => t.logprob <= 0 && t.top_logprobs.length === 2));
  const scoredStream = await client.chat.completions.create({ model: "mini", messages, max_tokens: 10,
    temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
  const streamedLogprobs = [];
  for await (const chunk of scoredStream) streamedLogprobs.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamedLogprobs, content);
  const completionScored = await client.completions.create({ model: "mini", prompt: "Once upon a time",
    max_tokens: 6, temperature: 0, logprobs: 2 });
  assert.equal(completionScored.choices[0].logprobs.tokens.join(""), completionScored.choices[0].text);

  // Embeddings: the client asks for base64 by default and decodes it; floats on request.
  const embedded = await client.embeddings.create({ model: "mini", input: ["The clinic opens at 9.", "Rain."] });
  assert.equal(embedded.data.length, 2);
  const norm = (v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  assert.ok(embedded.data.every((d) => d.embedding.length === 256 && Math.abs(norm(d.embedding) - 1) < 1e-4));
  const floats = await client.embeddings.create({ model: "mini", input: "Rain.", encoding_format: "float" });
  assert.deepEqual(floats.data[0].embedding, embedded.data[1].embedding);
  assert.ok(embedded.usage.prompt_tokens > 0);

  // Structured output: a JSON schema through response_format, whole and
  // streamed; parsed by the client's own helper (beta.chat.completions.parse).
  const clinic = { type: "object", additionalProperties: false, required: ["ok", "kind", "name"],
                   properties: { ok: { type: "boolean" }, kind: { enum: ["clinic", "school"] },
                                 name: { type: "string", maxLength: 6 } } };
  const response_format = { type: "json_schema", json_schema: { name: "clinic", schema: clinic, strict: true } };
  const structured = await client.beta.chat.completions.parse({ model: "mini", messages, temperature: 0,
                                                                max_tokens: 200, response_format });
  const parsed = structured.choices[0].message.parsed;
  assert.equal(typeof parsed.ok, "boolean");
  assert.ok(["clinic", "school"].includes(parsed.kind));
  assert.ok([...parsed.name].length <= 6);
  const structuredStream = await client.chat.completions.create({ model: "mini", messages, temperature: 0,
                                                                   max_tokens: 200, response_format, stream: true });
  let structuredText = "";
  for await (const chunk of structuredStream) structuredText += chunk.choices[0]?.delta?.content ?? "";
  assert.deepEqual(JSON.parse(structuredText), parsed);
  await assert.rejects(client.chat.completions.create({ model: "mini", messages, response_format: {
    type: "json_schema", json_schema: { name: "n", schema: { type: "integer", minimum: 1 } } } }),
    (error) => error instanceof OpenAI.BadRequestError && /minimum/.test(error.message));

  // The Responses API: text and message input, instructions, whole and streamed.
  const reply = await client.responses.create({ model: "mini", input: "Name a colour.", max_output_tokens: 10,
                                                temperature: 0 });
  assert.equal(reply.object, "response");
  assert.equal(reply.output_text, answer.choices[0].message.content, "responses and chat answers differ");
  assert.ok(reply.usage.input_tokens > 0 && reply.usage.output_tokens > 0);
  const replyStream = await client.responses.create({ model: "mini", input: [{ role: "user", content: "Name a colour." }],
                                                      max_output_tokens: 10, temperature: 0, stream: true });
  let replyText = "";
  let finalEvent = null;
  for await (const event of replyStream) {
    if (event.type === "response.output_text.delta") replyText += event.delta;
    if (event.type === "response.completed" || event.type === "response.incomplete") finalEvent = event;
  }
  assert.equal(replyText, reply.output_text);
  assert.equal(finalEvent.response.output[0].content[0].text, replyText);
  const instructed = await client.responses.create({ model: "mini", instructions: "Be brief.", input: "Hi",
                                                     max_output_tokens: 4, temperature: 0 });
  assert.ok(instructed.usage.input_tokens > reply.usage.input_tokens - 8);
  await assert.rejects(client.responses.create({ model: "mini", input: "Hi", previous_response_id: "resp_1" }),
                       (error) => error instanceof OpenAI.BadRequestError && /previous_response_id/.test(error.message));

  const cag = await client.chat.completions.create({ model: "mini@town", max_tokens: 8, temperature: 0,
    messages: [{ role: "user", content: "Who directs the Harlow Clinic?" }] });
  assert.ok(cag.usage.prompt_tokens_details.cached_tokens > 0);

  await assert.rejects(client.chat.completions.create({ model: "gpt-9", messages }), OpenAI.NotFoundError);
  await assert.rejects(client.chat.completions.create({ model: "mini", messages, temperature: 7 }),
                       OpenAI.BadRequestError);
  const stranger = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(stranger.models.list(), OpenAI.AuthenticationError);
  // The zod helper: a schema written in zod, sent as a strict json_schema, parsed back.
  const Clinic = z.object({ open: z.boolean(), kind: z.enum(["clinic", "school"]) });
  const zodParsed = await client.beta.chat.completions.parse({ model: "mini", messages, temperature: 0, max_tokens: 60,
    response_format: zodResponseFormat(Clinic, "clinic") });
  assert.deepEqual(Clinic.parse(zodParsed.choices[0].message.parsed), zodParsed.choices[0].message.parsed);
  console.log("openai client: all checks passed");
} finally {
  server.kill("SIGTERM");
}

// Tools, on a server that writes chats in Qwen 2.5's format (the mini model
// has no template of its own); a random-weight model calls a function only
// when tool_choice forces it.
const qwen = await startFrugalServe(frugal, ["-m", model, "-t", "2", "--name", "mini", "--chat-template", "qwen2.5"]);
try {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${qwen.port}/v1`, apiKey: "none", maxRetries: 0 });
  const weather = zodFunction({ name: "get_weather", description: "Today's weather in a city",
    parameters: z.object({ city: z.enum(["Oslo", "Paris"]), unit: z.enum(["C", "F"]) }) });
  const ask = [{ role: "user", content: "Weather in Oslo?" }];
  const request = { model: "mini", messages: ask, tools: [weather], tool_choice: "required", temperature: 0,
                    max_tokens: 120 };
  const called = await client.beta.chat.completions.parse(request);
  assert.equal(called.choices[0].finish_reason, "tool_calls");
  const call = called.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, "get_weather");
  assert.ok(["Oslo", "Paris"].includes(call.function.parsed_arguments.city));
  // Streamed: the client's stream helper puts the call together from the deltas.
  const streamed = await client.beta.chat.completions.stream(request).finalChatCompletion();
  assert.equal(streamed.choices[0].message.tool_calls[0].function.arguments, call.function.arguments);
  // The round trip: the call and its result go back; the model answers.
  const answered = await client.chat.completions.create({ model: "mini", tools: [weather], temperature: 0, max_tokens: 8,
    messages: [...ask, called.choices[0].message, { role: "tool", tool_call_id: call.id, content: "Sunny, 21 C" }] });
  assert.equal(answered.choices[0].message.role, "assistant");
  assert.ok(answered.usage.prompt_tokens > called.usage.prompt_tokens);
  const forced = await client.chat.completions.create({ ...request, tool_choice: { type: "function",
    function: { name: "get_weather" } } });
  assert.equal(forced.choices[0].message.tool_calls[0].function.name, "get_weather");
  console.log("openai client tools: all checks passed");
} finally {
  qwen.server.kill("SIGTERM");
}

// Embeddings from a BERT-family encoder (frugal serve --embedding), here a
// random one with the BGE vocabulary written by frugal synth.
const bert = join(mkdtempSync(join(tmpdir(), "frugal-bert-")), "bge-random.gguf");
const written = spawnSync(frugal, ["synth", "--arch", "bert", "--vocab", join(dirname(model), "..", "vocab",
  "ggml-vocab-bert-bge.gguf"), "--type", "Q8_0", "--embedding", "64", "--layers", "2", "--heads", "2", "--ffn", "128",
  "--context", "128", "-o", bert]);
assert.equal(written.status, 0, `synth failed: ${written.stderr}`);
const encoder = await startFrugalServe(frugal, ["-m", bert, "-t", "2", "--embedding"]);
try {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${encoder.port}/v1`, apiKey: "none", maxRetries: 0 });
  const texts = ["The clinic opens at 9.", "Who leads the Fenwick Water Office?"];
  const vectors = await client.embeddings.create({ model: "bge-random", input: texts });  // base64, decoded by the client
  const floats = await client.embeddings.create({ model: "bge-random", input: texts, encoding_format: "float" });
  assert.deepEqual(vectors.data.map((d) => d.embedding), floats.data.map((d) => d.embedding));
  const norm = (v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  assert.ok(floats.data.every((d) => d.embedding.length === 64 && Math.abs(norm(d.embedding) - 1) < 1e-4));
  await assert.rejects(client.chat.completions.create({ model: "bge-random", messages: [{ role: "user", content: "Hi" }] }),
                       (error) => error instanceof OpenAI.BadRequestError && /does not generate/.test(error.message));
  console.log("openai client embeddings from an encoder: all checks passed");
} finally {
  encoder.server.kill("SIGTERM");
}
