// Miniflare peer of benchmarks/peers.py: the same 6-step workflow (six trivial steps and a
// 1-day sleep) on Cloudflare's local Workflows engine (Miniflare/workerd), create -> complete.
//
//   node benchmarks/miniflare_peer.mjs [--instances N] [--rounds R]   # prints one JSON object
//   node benchmarks/miniflare_peer.mjs --serve                         # used by peers.py
//
// It uses the miniflare that tests/conformance pins (`cd tests/conformance && npm ci`). The
// sleep is skipped with the engine's own test modifier, as awf_deploy/harness/worker.mjs does:
// `env.WF.unsafeGetInstanceModifier(id)` then `disableSleeps()`, before `create({id})`. The
// modifiers are set up before the timed window; the window is Node's clock around one request
// to the Worker that creates the N instances and returns when all N are `complete`.
// Workflow state is persisted to a temporary directory (on disk, like awf's SQLite store), and
// every batch gets a fresh engine (workerd), started and warmed up outside the timed window.
//
// --serve reads commands from stdin, one JSON object a line, and answers each with one line:
//   {"ids": [...]} or {"instances": N}  ->  {"ok": true, "seconds": S}
// so that peers.py can interleave Miniflare's runs with the other peers' in paired rounds.
// A line {"quit": true} (or EOF) ends it.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const CONFORMANCE = join(HERE, "..", "tests", "conformance");
const COMPATIBILITY_DATE = "2026-04-01"; // as tests/conformance/driver.mjs

const WORKER = `
import { WorkflowEntrypoint } from "cloudflare:workers";

export class BenchWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const order = event.payload;
    await step.do("validate", async () => ({ id: order.id, valid: order.items.length > 0 }));
    const total = await step.do("price", async () => ({
      total: order.items.reduce((s, i) => s + i.price * i.qty, 0),
    }));
    await step.do("reserve", async () => ({ reservation: "r-" + order.id, qty: order.items.length }));
    await step.do("charge", async () => ({ charge: "ch-" + order.id, amount: total.total }));
    const ship = await step.do("ship", async () => ({ tracking: "TRK-" + order.id }));
    await step.sleep("before-notify", "1 day");
    await step.do("notify", async () => ({ sent: true, template: "confirmed" }));
    return ship;
  }
}

function order(id) {
  return {
    id,
    items: [{ sku: "ABC", price: 9.5, qty: 2 }, { sku: "XYZ", price: 3.0, qty: 1 }],
    customer: { email: id + "@example.com" },
  };
}

// RPC results (stubs) are released at once rather than left to the garbage collector.
function dispose(stub) {
  if (stub && typeof stub[Symbol.dispose] === "function") stub[Symbol.dispose]();
}

async function untilComplete(env, id) {
  const instance = await env.WF.get(id);
  try {
    for (;;) {
      const s = await instance.status();
      if (s.status === "complete") return s;
      if (s.status === "errored" || s.status === "terminated") {
        throw new Error(id + ": " + s.status + " " + JSON.stringify(s.error));
      }
      await scheduler.wait(1);
    }
  } finally {
    dispose(instance);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const { ids } = await request.json();
    try {
      if (url.pathname === "/prepare") {
        for (const id of ids) {
          const modifier = await env.WF.unsafeGetInstanceModifier(id);
          await modifier.disableSleeps();
          dispose(modifier);
        }
        return Response.json({ ok: true });
      }
      if (url.pathname === "/run") {
        for (const id of ids) dispose(await env.WF.create({ id, params: order(id) }));
        // In creation order, so that mostly one instance at a time is polled (every 1 ms).
        const outputs = [];
        for (const id of ids) outputs.push(await untilComplete(env, id));
        const bad = outputs.filter((s, i) => s.output?.tracking !== "TRK-" + ids[i]);
        if (bad.length) throw new Error("unexpected output " + JSON.stringify(bad[0]));
        return Response.json({ ok: true });
      }
      return Response.json({ ok: false, error: "unknown route" }, { status: 404 });
    } catch (e) {
      return Response.json({ ok: false, error: String(e && e.stack || e) }, { status: 500 });
    }
  },
};
`;

function parseArgs(argv) {
  const args = { instances: 100, rounds: 5, serve: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--serve") args.serve = true;
    else if (a === "--instances") args.instances = Number(argv[++i]);
    else if (a === "--rounds") args.rounds = Number(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

async function loadMiniflare() {
  const require = createRequire(join(CONFORMANCE, "package.json"));
  let path;
  try {
    path = require.resolve("miniflare");
  } catch {
    throw new Error(
      "miniflare is not installed: run `cd tests/conformance && npm ci` (it pins miniflare)",
    );
  }
  const version = require("miniflare/package.json").version;
  const { Miniflare } = require(path);
  return { Miniflare, version };
}

let batch = 0;

async function call(mf, route, ids) {
  const res = await mf.dispatchFetch(`http://bench.local${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ids }),
  });
  const text = await res.text();
  let answer;
  try {
    answer = JSON.parse(text);
  } catch {
    throw new Error(`${route} (${res.status}): ${text}`);
  }
  if (!answer.ok) throw new Error(`${route}: ${answer.error}`);
}

// One timed batch: new instances (ids given, or n made up), create -> complete; wall seconds.
async function runBatch(mf, n, ids) {
  batch++;
  ids = ids ?? Array.from({ length: n }, (_, i) => `b${batch}-o-${i}`);
  await call(mf, "/prepare", ids);
  const t0 = performance.now();
  await call(mf, "/run", ids);
  return (performance.now() - t0) / 1000;
}

// A fresh engine for every timed batch, like awf's fresh SQLite file per round: one workerd
// process accumulating thousands of instances' Durable Objects ends in SQLITE_NOMEM here.
// Starting it (and a warm-up batch) is outside the timed window.
async function freshEngine(Miniflare) {
  const persist = mkdtempSync(join(tmpdir(), "awf-bench-miniflare-"));
  const mf = new Miniflare({
    modules: true,
    script: WORKER,
    compatibilityDate: COMPATIBILITY_DATE,
    cf: false, // no network
    host: "127.0.0.1",
    port: 0,
    workflowsPersist: persist,
    workflows: { WF: { name: "bench", className: "BenchWorkflow" } },
  });
  const engine = {
    mf,
    async dispose() {
      await mf.dispose();
      rmSync(persist, { recursive: true, force: true });
    },
  };
  try {
    await mf.ready;
    await runBatch(mf, 5); // warm up: workerd, the isolate, the engine's Durable Objects
  } catch (e) {
    await engine.dispose();
    throw e;
  }
  return engine;
}

async function timed(Miniflare, n, ids) {
  const engine = await freshEngine(Miniflare);
  try {
    return await runBatch(engine.mf, n, ids);
  } finally {
    await engine.dispose();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { Miniflare, version } = await loadMiniflare();
  const info = {
    miniflare: version,
    node: process.version,
    persist: "disk (a temporary directory), a fresh engine per batch",
  };
  if (args.serve) {
    await (await freshEngine(Miniflare)).dispose(); // check that it starts at all
    process.stdout.write(JSON.stringify({ ready: true, ...info }) + "\n");
    const lines = createInterface({ input: process.stdin });
    for await (const line of lines) {
      if (!line.trim()) continue;
      const cmd = JSON.parse(line);
      if (cmd.quit) break;
      let answer;
      try {
        answer = { ok: true, seconds: await timed(Miniflare, cmd.instances, cmd.ids) };
      } catch (e) {
        answer = { ok: false, error: String(e.message ?? e) };
      }
      process.stdout.write(JSON.stringify(answer) + "\n");
    }
    return;
  }
  const seconds = [];
  for (let r = 0; r < args.rounds; r++) seconds.push(await timed(Miniflare, args.instances));
  const per = seconds.map((s) => s / args.instances).sort((a, b) => a - b);
  const mid = per.length >> 1;
  const median = per.length % 2 ? per[mid] : (per[mid - 1] + per[mid]) / 2;
  process.stdout.write(
    JSON.stringify({
      ...info,
      instances: args.instances,
      rounds: args.rounds,
      seconds,
      median_us_per_instance: median * 1e6,
    }) + "\n",
  );
}

main().catch((e) => {
  process.stderr.write(`miniflare_peer: ${e.stack ?? e}\n`);
  process.exit(1);
});
