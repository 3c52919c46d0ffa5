// `./dev bench profile`: where a request's time goes inside workerd, from V8's sampling CPU profiler, through the
// inspector of the isolate that runs a Worker under `wrangler dev`.
//   node bench/profile.mjs WRANGLER_PID WORKER_NAME URL REQUESTS [METHOD BODY HEADERS_JSON]
// Sends REQUESTS requests one after another while profiling, then prints self time per request, grouped: the
// Worker's wasm, the JavaScript bundle around it (wasm-bindgen's glue, workers-rs's shim, wrangler's dev
// middleware), workerd's runtime APIs (Response, Headers, URL, ...: frames without a script), V8's own
// ("(program)", "(garbage collector)") and idle (waiting on I/O, including the next request).

import { readFileSync, readdirSync, readlinkSync } from "node:fs";

const [wrangler, worker, url, count, method = "GET", body, headers = "{}"] = process.argv.slice(2);
const requests = Number(count);
const init = { method, body, headers: JSON.parse(headers) };
const inspector = await findInspector(Number(wrangler), `core:user:${worker}`);

// Node does not wait on an open WebSocket alone: keep it running until the profile is in.
const keepAlive = setInterval(() => {}, 1000);
const { socket, command } = await connect(inspector);

async function send() {
  const response = await fetch(url, init);
  await response.text();
  if (response.status !== 200) throw new Error(`${url}: ${response.status}`);
}

await command("Profiler.setSamplingInterval", { interval: 50 }); // µs
for (let i = 0; i < 50; i++) await send(); // warm-up
await command("Profiler.start");
const started = performance.now();
for (let i = 0; i < requests; i++) await send();
const wall = performance.now() - started;
const { result } = await command("Profiler.stop");

const nodes = new Map(result.profile.nodes.map((node) => [node.id, node]));
const groups = new Map();
let profiled = 0;
result.profile.samples.forEach((sample, i) => {
  const { functionName, url: script } = nodes.get(sample).callFrame;
  const group = script.startsWith("wasm")
    ? "the Worker's wasm"
    : script
      ? "JavaScript bundle (glue, shim, dev middleware)"
      : functionName.startsWith("(")
        ? functionName
        : `runtime API: ${functionName || "(anonymous)"}`;
  const micros = result.profile.timeDeltas[i] ?? 0;
  profiled += micros;
  groups.set(group, (groups.get(group) ?? 0) + micros);
});

console.log(`  ${requests} requests, ${(wall / requests).toFixed(2)} ms each (wall); self time per request:`);
for (const [group, micros] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
  const share = ((100 * micros) / profiled).toFixed(1).padStart(5);
  console.log(`    ${group.padEnd(48)} ${(micros / 1000 / requests).toFixed(3)} ms  ${share} %`);
}
socket.close();
clearInterval(keepAlive);

// An inspector session with the profiler enabled. workerd leaves the first session after a start unanswered,
// so a session whose first answer does not come within seconds is dropped for a new one.
async function connect(address) {
  for (let attempt = 1; ; attempt++) {
    const socket = new WebSocket(address);
    let lastId = 0;
    const waiting = new Map();
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    };
    const command = (name, params = {}) =>
      new Promise((resolve) => {
        const id = ++lastId;
        waiting.set(id, resolve);
        socket.send(JSON.stringify({ id, method: name, params }));
      });
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot open the inspector at ${address}`));
    });
    const answered = await Promise.race([command("Profiler.enable"), new Promise((r) => setTimeout(r, 3000))]);
    if (answered) return { socket, command };
    socket.close();
    if (attempt === 5) throw new Error(`the inspector at ${address} does not answer`);
  }
}

// wrangler dev starts workerd with its inspector on a port of the OS's choosing: look for it among the loopback
// ports the workerd processes under WRANGLER_PID listen on, and ask each for its list of isolates.
async function findInspector(root, isolate) {
  const parent = (pid) => Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  const under = (pid) => {
    for (let p = pid; p > 1; p = parent(p)) if (p === root) return true;
    return false;
  };
  const pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number);
  for (const pid of pids) {
    let program;
    try {
      program = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      continue;
    }
    if (program !== "workerd" || !under(pid)) continue;
    const sockets = new Set(
      readdirSync(`/proc/${pid}/fd`).map((fd) => /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]),
    );
    for (const line of readFileSync(`/proc/${pid}/net/tcp`, "utf8").split("\n").slice(1)) {
      const [, local, , state, , , , , , inode] = line.trim().split(/\s+/);
      if (state !== "0A" || !sockets.has(inode) || !local.startsWith("0100007F:")) continue; // listening, 127.0.0.1
      const port = parseInt(local.split(":")[1], 16);
      try {
        const list = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
        const found = list.find((entry) => entry.id === isolate);
        if (found) return found.webSocketDebuggerUrl;
      } catch {
        // not an inspector
      }
    }
  }
  throw new Error(`no inspector for ${isolate} under pid ${root}`);
}
