// Load test of `frugal serve` (docs/performance.md): CLIENTS concurrent
// clients send chat requests back to back for SECONDS on loopback; reports
// throughput, latency percentiles, failures and the server's RSS before and
// after. Node.js only, no packages (it starts the server with
// tests/server/start_frugal_serve.mjs).
//
//   node bench/server_load.mjs [FRUGAL] [MODEL] [CLIENTS=32] [SECONDS=60] [MAX_TOKENS=16] [PARALLEL=4] [PREFIX_CACHE_MIB=64]
import { readFileSync } from "node:fs";
import { startFrugalServe } from "../tests/server/start_frugal_serve.mjs";

const [frugal = "build/frugal", model = "../shared/models/tiny-llama-spm.gguf", clients = "32", seconds = "60",
       maxTokens = "16", parallel = "4", prefixCache = "64"] = process.argv.slice(2);
const { server, port } = await startFrugalServe(frugal, ["-m", model, "--queue", String(Number(clients) + 8),
                                                     "--parallel", parallel, "--prefix-cache", prefixCache]);
const rss = () => Number(readFileSync(`/proc/${server.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]) / 1024;
const url = `http://127.0.0.1:${port}/v1/chat/completions`;
const name = JSON.parse(await (await fetch(`http://127.0.0.1:${port}/v1/models`)).text()).data[0].id;

const rssBefore = rss();
const latencies = [];
let failures = 0, tokens = 0;
const deadline = Date.now() + Number(seconds) * 1000;
async function client(id) {
  for (let i = 0; Date.now() < deadline; ++i) {
    const start = performance.now();
    try {
      const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: name, max_tokens: Number(maxTokens), temperature: 0.7, seed: id * 100000 + i,
                               messages: [{ role: "user", content: `Client ${id} asks question ${i}.` }] }) });
      const body = await response.json();
      if (response.status !== 200) throw new Error(JSON.stringify(body));
      tokens += body.usage.completion_tokens;
      latencies.push(performance.now() - start);
    } catch (e) {
      ++failures;
    }
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: Number(clients) }, (_, id) => client(id)));
const elapsed = (performance.now() - started) / 1000;
const rssAfter = rss();
server.kill("SIGTERM");
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]?.toFixed(0);
console.log(JSON.stringify({ clients: Number(clients), parallel: Number(parallel), seconds: Number(elapsed.toFixed(1)), requests: latencies.length,
  failures, requests_per_second: Number((latencies.length / elapsed).toFixed(2)),
  tokens_per_second: Number((tokens / elapsed).toFixed(1)), latency_ms_p50: Number(pct(50)),
  latency_ms_p99: Number(pct(99)), rss_mib_before: Number(rssBefore.toFixed(1)),
  rss_mib_after: Number(rssAfter.toFixed(1)) }, null, 1));
