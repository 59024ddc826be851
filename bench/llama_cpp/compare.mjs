// Measures llama.cpp on the same GGUF files and thread count as `frugal bench`,
// through the node-llama-cpp package (its prebuilt llama.cpp CPU backend,
// which picks the variant for this CPU at run time). Same tests as
// llama-bench: pp = one batch of P prompt tokens on a fresh context,
// tg = N tokens decoded one at a time after a one-token prompt.
//
//   npm install --prefix bench/llama_cpp node-llama-cpp@3.21.1
//   node bench/llama_cpp/compare.mjs MODEL.gguf [threads=2] [P=512] [N=128] [repetitions=3]
//
// Not part of the build or the tests: it is only for docs/performance.md.
import {getLlama} from "node-llama-cpp";

const [modelPath, threadsArg = "2", promptArg = "512", genArg = "128", repsArg = "3"] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: node compare.mjs MODEL.gguf [threads] [prompt tokens] [generated tokens] [repetitions]");
  process.exit(2);
}
const threads = Number(threadsArg), promptTokens = Number(promptArg), generated = Number(genArg);
const repetitions = Number(repsArg);

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const vocab = 50000;  // the benchmark files use the GPT-2 vocabulary (50257 tokens)
const tokens = Array.from({length: Math.max(promptTokens, 1)}, (_, i) => (i * 7919 + 13) % vocab);

async function measure(fn) {
  await fn();  // warm-up, untimed
  const rates = [];
  for (let r = 0; r < repetitions; ++r) rates.push(await fn());
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const sd = Math.sqrt(rates.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, rates.length - 1));
  return {mean, sd};
}

async function prefill() {
  const context = await model.createContext({contextSize: 1024, batchSize: promptTokens, threads, sequences: 1});
  const sequence = context.getSequence();
  const start = process.hrtime.bigint();
  await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, promptTokens));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await context.dispose();
  return promptTokens / seconds;
}

async function decode() {
  const context = await model.createContext({contextSize: 1024, batchSize: 512, threads, sequences: 1});
  const sequence = context.getSequence();
  await sequence.evaluateWithoutGeneratingNewTokens([tokens[0]]);
  const start = process.hrtime.bigint();
  for (let i = 0; i < generated; ++i) await sequence.evaluateWithoutGeneratingNewTokens([tokens[(i + 1) % tokens.length]]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await context.dispose();
  return generated / seconds;
}

const name = modelPath.split("/").pop();
if (promptTokens > 0) {
  const r = await measure(prefill);
  console.log(`| llama.cpp | ${name} | ${threads} | pp${promptTokens} | ${r.mean.toFixed(2)} ± ${r.sd.toFixed(2)} |`);
}
if (generated > 0) {
  const r = await measure(decode);
  console.log(`| llama.cpp | ${name} | ${threads} | tg${generated} | ${r.mean.toFixed(2)} ± ${r.sd.toFixed(2)} |`);
}
await model.dispose();
