// frugal serve driven by real client libraries, unchanged: the `ollama`
// client (chat, generate, stream, list, embed, structured format),
// LangChain's ChatOpenAI (invoke, stream, withStructuredOutput) and the
// Vercel AI SDK's default OpenAI provider (generateText, streamText,
// generateObject). ctest runs it (test server_clients_js); scripts/setup.sh
// installs the pinned packages here.
//   node run.mjs FRUGAL_BINARY MODEL.gguf
import assert from "node:assert/strict";
import { Ollama } from "ollama";
import { ChatOpenAI } from "@langchain/openai";
import { generateObject, generateText, streamText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { z } from "zod";
import { startFrugalServe } from "../start_frugal_serve.mjs";

globalThis.AI_SDK_LOG_WARNINGS = false;  // generateObject's deprecation notice: it is what apps still call
const [frugal, model] = process.argv.slice(2);
const { server, port } = await startFrugalServe(frugal, ["-m", model, "-t", "2", "--name", "mini"]);
const base = `http://127.0.0.1:${port}`;
// Bounded strings and small enums: a random-weight model still ends its answer.
const Clinic = z.object({ ok: z.boolean(), kind: z.enum(["clinic", "school"]), name: z.string().max(6) });
const check = (value) => {
  assert.equal(typeof value.ok, "boolean");
  assert.ok(["clinic", "school"].includes(value.kind));
  assert.ok([...value.name].length <= 6);
};

try {
  // --- ollama
  const ollama = new Ollama({ host: base });
  const messages = [{ role: "user", content: "Name a colour." }];
  const chat = await ollama.chat({ model: "mini", messages, options: { temperature: 0, num_predict: 10 } });
  assert.equal(chat.message.role, "assistant");
  assert.ok(chat.done && chat.eval_count > 0);
  let streamed = "";
  for await (const part of await ollama.chat({ model: "mini", messages, stream: true,
                                               options: { temperature: 0, num_predict: 10 } })) {
    streamed += part.message.content;
  }
  assert.equal(streamed, chat.message.content);
  const generated = await ollama.generate({ model: "mini", prompt: "Once upon a time", raw: true,
                                            options: { temperature: 0, num_predict: 6 } });
  assert.ok(generated.done);
  const listed = await ollama.list();
  assert.deepEqual(listed.models.map((m) => m.name), ["mini:latest"]);
  const embedded = await ollama.embed({ model: "mini", input: ["Rain.", "Sun."] });
  assert.equal(embedded.embeddings.length, 2);
  const formatted = await ollama.chat({ model: "mini", messages, format: z.toJSONSchema(Clinic),
                                        options: { temperature: 0, num_predict: 200 } });
  check(JSON.parse(formatted.message.content));
  await assert.rejects(ollama.chat({ model: "llama3", messages }), /not found/);

  // --- LangChain
  const lc = new ChatOpenAI({ model: "mini", apiKey: "none", temperature: 0, maxTokens: 10,
                              configuration: { baseURL: `${base}/v1` } });
  const invoked = await lc.invoke("Name a colour.");
  assert.equal(invoked.content, chat.message.content);
  let lcStreamed = "";
  for await (const chunk of await lc.stream("Name a colour.")) lcStreamed += chunk.content;
  assert.equal(lcStreamed, invoked.content);
  const structured = new ChatOpenAI({ model: "mini", apiKey: "none", temperature: 0,
                                      configuration: { baseURL: `${base}/v1` } }).withStructuredOutput(Clinic);
  check(await structured.invoke("Describe the clinic."));

  // --- the AI SDK's default provider (the Responses API)
  const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: "none" });
  const text = await generateText({ model: openai("mini"), prompt: "Name a colour.", temperature: 0,
                                    maxOutputTokens: 10 });
  assert.equal(text.text, chat.message.content);
  const textStream = streamText({ model: openai("mini"), prompt: "Name a colour.", temperature: 0,
                                  maxOutputTokens: 10 });
  let aiStreamed = "";
  for await (const delta of textStream.textStream) aiStreamed += delta;
  assert.equal(aiStreamed, text.text);
  const object = await generateObject({ model: openai("mini"), schema: Clinic, prompt: "Describe the clinic.",
                                        temperature: 0 });
  check(object.object);
  console.log("client libraries: all checks passed");
} finally {
  server.kill("SIGTERM");
}
