#!/usr/bin/env node
// The harness process that awf_deploy/_harness.py drives: one Pyodide and one Miniflare for the
// whole session, a bundle loaded at a time. It speaks JSON lines on stdin/stdout, both ways:
//
//   Python -> Node   {"id": 1, "op": "load", ...}            Node answers {"id": 1, "ok": true, "value": ...}
//   Node -> Python   {"id": "n1", "op": "fetch", ...}         Python answers {"id": "n1", "ok": ..., "value": ...}
//
// Node asks Python for what the real runtime would get from the network: outbound `fetch` from
// the Python (answered by the flow's HTTP mock) and Workers AI (the flow's AI provider). Logs,
// and everything the Python prints, go to stderr.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Bridge } from "./bridge.mjs";
import { errorToJson, pack, unpack } from "./codec.mjs";
import { createPythonHost } from "./pyhost.mjs";

const TERMINAL = new Set(["complete", "errored", "terminated"]);
const log = (line) => process.stderr.write(`${line}\n`);

function send(message) {
  process.stdout.write(`${JSON.stringify(pack(message))}\n`);
}

// ------------------------------------------------------------------ asking Python

const asked = new Map();
let nextAsk = 1;

function ask(op, fields) {
  const id = `n${nextAsk++}`;
  return new Promise((resolve, reject) => {
    asked.set(id, { resolve, reject });
    send({ id, op, ...fields });
  });
}

async function outbound(request) {
  const body = request.body ? new Uint8Array(await request.arrayBuffer()) : null;
  const answer = await ask("fetch", {
    method: request.method,
    url: request.url,
    headers: [...request.headers.entries()],
    body: body ? Buffer.from(body).toString("base64") : null,
  });
  return new Response(answer.body ? Buffer.from(answer.body, "base64") : null, {
    status: answer.status,
    headers: answer.headers,
  });
}

// ------------------------------------------------------------------ serving the Worker's HTTP API

let server = null;

async function toRequest(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = chunks.length > 0 && req.method !== "GET" && req.method !== "HEAD" ? Buffer.concat(chunks) : undefined;
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(key, value);
  }
  return new Request(`http://${req.headers.host ?? "127.0.0.1"}${req.url}`, { method: req.method, headers, body });
}

// The instances the dev server has seen, by workflow name: {id: {seen: ISO time}}. The Workflows
// binding has no list call, so `GET /workflows/<name>/instances` (dev only) answers from this:
// every run the engine started (Bridge.start, wrapped below) and every instance created through
// the served API. With a state file (the persist folder) it survives a restart.
const seen = { file: null, byWorkflow: {} };

function loadSeen(file) {
  seen.file = file;
  if (!file || !existsSync(file)) return;
  try {
    const data = JSON.parse(readFileSync(file, "utf8"));
    if (data && typeof data === "object") {
      for (const [workflow, ids] of Object.entries(data)) {
        seen.byWorkflow[workflow] = { ...ids, ...(seen.byWorkflow[workflow] ?? {}) };
      }
    }
  } catch (error) {
    log(`awf-deploy dev: ignoring ${file}: ${error.message}`);
  }
}

function remember(workflow, id) {
  if (!workflow || !id) return;
  const ids = (seen.byWorkflow[workflow] ??= {});
  if (ids[id]) return;
  ids[id] = { seen: new Date().toISOString() };
  if (seen.file) {
    try {
      writeFileSync(seen.file, JSON.stringify(seen.byWorkflow, null, 1));
    } catch (error) {
      log(`awf-deploy dev: cannot write ${seen.file}: ${error.message}`);
    }
  }
}

// Every run the engine starts (so also cron runs, and runs it resumes after a restart), under
// its workflow's name: Bridge.lastRun has the instance ids but not their workflow.
function trackRuns(bridge) {
  const start = bridge.start.bind(bridge);
  bridge.start = (className, event) => {
    const wf = bridge.config?.workflows.find((w) => w.className === className);
    if (wf && event?.instanceId) remember(wf.name, event.instanceId);
    return start(className, event);
  };
}

function json(res, status, value) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

async function listInstances(bridge, name, query) {
  const wf = bridge.config?.workflows.find((w) => w.name === name);
  if (!wf) return [404, { error: `no workflow '${name}'; this Worker runs: ${(bridge.config?.workflows ?? []).map((w) => w.name).join(", ")}` }];
  const wanted = query.get("status");
  const rows = [];
  for (const [id, info] of Object.entries(seen.byWorkflow[name] ?? {})) {
    let status;
    try {
      status = (await bridge.binding({ kind: "workflow", binding: wf.binding, op: "status", id })).status;
    } catch {
      continue; // gone (a persist folder wiped by hand)
    }
    if (wanted && status !== wanted) continue;
    rows.push({ id, status, created_on: info.seen });
  }
  rows.sort((a, b) => (a.created_on < b.created_on ? 1 : a.created_on > b.created_on ? -1 : 0));
  const limit = Number.parseInt(query.get("limit") ?? "", 10);
  return [200, { workflow: name, instances: Number.isFinite(limit) && limit > 0 ? rows.slice(0, limit) : rows }];
}

// The dev server: the Worker's HTTP API on 127.0.0.1:port, plus the dev-only list route. With
// `logRequests`, one line per request on stderr: method, path, status, time.
function serve(bridge, port, { logRequests = false, stateFile = null } = {}) {
  loadSeen(stateFile);
  return new Promise((resolve, reject) => {
    server = createServer(async (req, res) => {
      const started = Date.now();
      let status = 500;
      try {
        const url = new URL(req.url ?? "/", "http://127.0.0.1");
        const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
        if (req.method === "GET" && parts.length === 3 && parts[0] === "workflows" && parts[2] === "instances") {
          const [code, value] = await listInstances(bridge, parts[1], url.searchParams);
          status = code;
          json(res, code, value);
          return;
        }
        const response = await bridge.worker.fetch(await toRequest(req));
        const body = Buffer.from(await response.arrayBuffer());
        status = response.status;
        if (req.method === "POST" && status === 201 && parts.length === 3 && parts[0] === "workflows") {
          try {
            remember(parts[1], JSON.parse(body.toString("utf8")).id);
          } catch {
            // not the API's answer: nothing to remember
          }
        }
        res.writeHead(response.status, Object.fromEntries(response.headers.entries()));
        res.end(body);
      } catch (error) {
        log(`awf-deploy dev: ${req.method} ${req.url}: ${error.message ?? error}`);
        status = 500;
        json(res, 500, { error: String(error.message ?? error) });
      } finally {
        if (logRequests) log(`awf-deploy dev: ${req.method} ${req.url} -> ${status} (${Date.now() - started} ms)`);
      }
    });
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });
}

// ------------------------------------------------------------------ operations

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(bridge, binding, id, timeoutMs, until) {
  const deadline = Date.now() + timeoutMs;
  const wanted = until ? new Set(until) : TERMINAL;
  for (;;) {
    const status = await bridge.binding({ kind: "workflow", binding, op: "status", id });
    if (wanted.has(status.status)) return status;
    if (Date.now() >= deadline) return { ...status, timedOut: true };
    await sleep(10);
  }
}

async function tables(bridge, binding) {
  const list = await bridge.binding({
    kind: "d1",
    binding,
    method: "all",
    sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%' ORDER BY name",
    params: [],
  });
  const out = {};
  for (const { name } of list.results) {
    const rows = await bridge.binding({ kind: "d1", binding, method: "all", sql: `SELECT * FROM "${name}" ORDER BY rowid`, params: [] });
    out[name] = rows.results;
  }
  return out;
}

async function handle(bridge, message) {
  switch (message.op) {
    case "load":
      return bridge.load(message.config, { persist: message.persist });
    case "seed": {
      if (message.statements.length === 0) return null;
      return bridge.binding({ kind: "d1", binding: message.binding, method: "batch", statements: message.statements });
    }
    case "tables":
      return tables(bridge, message.binding);
    case "workflow":
      return bridge.binding({ kind: "workflow", binding: message.binding, op: message.call, ...message.fields });
    case "wait":
      return waitFor(bridge, message.binding, message.instance, message.timeoutMs, message.until);
    case "steps":
      return bridge.steps(message.instance);
    case "fetch": {
      const request = new Request(message.url, {
        method: message.method,
        headers: message.headers,
        body: message.body ?? undefined,
      });
      const response = await bridge.worker.fetch(request);
      return { status: response.status, headers: [...response.headers.entries()], body: await response.text() };
    }
    case "scheduled": {
      await bridge.worker.scheduled({ cron: message.cron, scheduledTime: message.scheduledTime, noRetry() {} });
      return null;
    }
    case "serve":
      return { port: await serve(bridge, message.port ?? 0, { logRequests: message.log, stateFile: message.stateFile }) };
    default:
      throw new Error(`unknown operation ${message.op}`);
  }
}

async function main() {
  const started = Date.now();
  const host = await createPythonHost({
    stdout: log,
    stderr: log,
    fetch: (input, init) => outbound(new Request(input, init)),
  });
  const bridge = new Bridge({
    host,
    log,
    outbound,
    ai: (model, inputs) => ask("ai", { model, inputs }),
  });
  trackRuns(bridge);
  send({ id: 0, ok: true, value: { ready: true, pyodideVersion: host.pyodideVersion, ms: Date.now() - started } });

  const lines = createInterface({ input: process.stdin });
  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    if (server) server.close();
    await bridge.dispose().catch(() => {});
    process.exit(0);
  };
  lines.on("line", (line) => {
    if (!line.trim()) return;
    let message;
    try {
      message = unpack(JSON.parse(line));
    } catch (error) {
      log(`awf harness: bad message: ${error.message}`);
      return;
    }
    if (typeof message.id === "string" && asked.has(message.id)) {
      const waiter = asked.get(message.id);
      asked.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new Error(message.error?.message ?? "failed"));
      return;
    }
    if (message.op === "close") {
      shutdown();
      return;
    }
    handle(bridge, message).then(
      (value) => send({ id: message.id, ok: true, value }),
      (error) => send({ id: message.id, ok: false, error: { ...errorToJson(error), traceback: error.traceback, module: error.module } }),
    );
  });
  lines.on("close", shutdown);
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

main().catch((error) => {
  send({ id: 0, ok: false, error: errorToJson(error) });
  log(`awf harness: ${error.stack ?? error}`);
  process.exit(1);
});
