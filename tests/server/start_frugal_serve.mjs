// Starts `frugal serve` on a free loopback port (--port 0) and resolves
// once it announces the port: { server (the child process), port }. Used by
// the openai-npm test and by bench/server_load.mjs. Node.js only.
import { spawn } from "node:child_process";

export async function startFrugalServe(frugal, args) {
  const server = spawn(frugal, ["serve", "--port", "0", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let timer;
  const port = await new Promise((resolve, reject) => {
    let text = "";
    server.stderr.on("data", (data) => {
      text += data;
      const match = text.match(/serving on http:\/\/127\.0\.0\.1:(\d+)/);
      if (match) resolve(Number(match[1]));
    });
    server.on("exit", (code) => reject(new Error(`frugal serve exited (${code}): ${text}`)));
    timer = setTimeout(() => reject(new Error(`no port announced: ${text}`)), 30000);
  }).finally(() => clearTimeout(timer));
  return { server, port };
}
