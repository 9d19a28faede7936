// Node's half of the bridge: one Miniflare (Cloudflare's local Workflows engine and D1), the
// Worker of worker.mjs inside it, and the bindings the bundle's Python sees (`env`), which
// forward to the real ones in Miniflare. A workflow run arrives from the engine through the
// service binding AWF_NODE; the Python's step calls are queued for the Worker, which performs
// them on the engine's `step` and settles them here.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { errorFromJson, errorToJson, pack, unpack } from "./codec.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
// The JavaScript side's own date: the newest the pinned workerd knows. The Python side's flags
// come from the bundle's date (pyhost.mjs).
const WORKER_COMPATIBILITY_DATE = "2026-04-01";
const IDLE_POLL_MS = 20_000; // a /run/next long-poll answers [] after this, and is asked again

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const ident = (name) => /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name);

// One run of a Python Workflow, as the engine started it: the commands the Python issued that the
// Worker has not collected yet, the step bodies by call id, and the calls awaiting settlement.
class Run {
  constructor(id, instanceId) {
    this.id = id;
    this.instanceId = instanceId;
    this.queue = [];
    this.waiter = null;
    this.calls = new Map();
    this.steps = []; // [kind, name] in the order the Python issued them
    this.nextCall = 1;
  }

  push(command) {
    this.queue.push(command);
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = null;
      wake();
    }
  }

  async take() {
    if (this.queue.length === 0) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, IDLE_POLL_MS);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.queue.splice(0);
  }

  issue(kind, name, fields, body) {
    const callId = this.nextCall++;
    const pending = deferred();
    this.calls.set(callId, { ...pending, body });
    this.steps.push([kind, name]);
    this.push({ kind, name, callId, ...fields });
    return pending.promise;
  }

  // The `step` object the Python Workflow receives, shaped like the RPC stub workerd hands it.
  stepStub() {
    return {
      do: (name, ...rest) => {
        const body = rest.pop();
        const hasConfig = rest.length > 0 && rest[0] !== undefined;
        const config = hasConfig ? rest[0] : undefined;
        return this.issue("do", name, { hasConfig, config }, body);
      },
      sleep: (name, duration) => this.issue("sleep", name, { duration }),
      sleepUntil: (name, timestamp) => this.issue("sleepUntil", name, { timestamp }),
      waitForEvent: (name, options) => this.issue("waitForEvent", name, { options }),
    };
  }
}

export class Bridge {
  constructor({ host, log = (line) => process.stderr.write(`${line}\n`), outbound, ai }) {
    this.host = host;
    this.log = log;
    this.outbound = outbound; // async (Request) => Response, for the Python's fetch
    this.ai = ai; // async (model, inputs) => answer, for env.AI
    this.mf = null;
    this.worker = null;
    this.config = null;
    this.runs = new Map();
    this.lastRun = new Map(); // instance id -> its newest Run
    this.nextRun = 1;
  }

  // Miniflare's options for a bundle: its workflows and D1, and the service binding to Node.
  options(config, persist) {
    const workflows = {};
    const exports = [];
    for (const wf of config.workflows) {
      if (!ident(wf.className)) throw new Error(`invalid class name ${wf.className}`);
      workflows[wf.binding] = { name: wf.name, className: wf.className };
      exports.push(`export const ${wf.className} = workflowClass(${JSON.stringify(wf.className)});`);
    }
    const index = [`import { workflowClass } from "./worker.mjs";`, `export { default } from "./worker.mjs";`, ...exports].join("\n");
    const options = {
      modules: [
        { type: "ESModule", path: join(HERE, "index.mjs"), contents: index },
        { type: "ESModule", path: join(HERE, "worker.mjs"), contents: readFileSync(join(HERE, "worker.mjs"), "utf8") },
        { type: "ESModule", path: join(HERE, "codec.mjs"), contents: readFileSync(join(HERE, "codec.mjs"), "utf8") },
      ],
      modulesRoot: HERE,
      compatibilityDate: WORKER_COMPATIBILITY_DATE,
      cf: false,
      host: "127.0.0.1",
      port: 0,
      workflows,
      serviceBindings: { AWF_NODE: (request) => this.serve(request) },
    };
    if (config.d1) options.d1Databases = { [config.d1]: "awf-harness-db" };
    if (persist) {
      options.d1Persist = join(persist, "d1");
      options.workflowsPersist = join(persist, "workflows");
      options.durableObjectsPersist = join(persist, "do");
    }
    return options;
  }

  // Load a bundle: (re)configure Miniflare for it, then import its Python in Pyodide.
  async load(config, { persist } = {}) {
    const options = this.options(config, persist);
    if (this.mf === null) {
      this.mf = new Miniflare(options);
      await this.mf.ready;
    } else {
      await this.mf.setOptions(options);
    }
    this.config = config;
    this.runs.clear();
    this.lastRun.clear();
    this.worker = await this.host.load({
      bundleDir: config.bundleDir,
      mainModule: config.mainModule ?? "entry.py",
      compatibilityDate: config.compatibilityDate,
      compatibilityFlags: config.compatibilityFlags ?? [],
      env: this.env(config),
    });
    return {
      entrypoints: this.worker.entrypoints,
      flags: this.worker.flags,
      pyodideVersion: this.host.pyodideVersion,
    };
  }

  async dispose() {
    if (this.mf) await this.mf.dispose();
    this.mf = null;
  }

  // ------------------------------------------------------------------ bindings, as Python sees them

  async binding(body) {
    const response = await this.mf.dispatchFetch("http://awf-bindings/", {
      method: "POST",
      body: JSON.stringify(pack(body)),
    });
    const answer = unpack(await response.json());
    if (!answer.ok) throw errorFromJson(answer.error);
    return answer.value;
  }

  env(config) {
    const env = { ...(config.vars ?? {}) };
    for (const wf of config.workflows) env[wf.binding] = this.workflowBinding(wf.binding);
    if (config.d1) env[config.d1] = this.d1Binding(config.d1);
    if (config.ai) env[config.ai] = { run: (model, inputs) => this.ai(model, inputs) };
    return env;
  }

  d1Binding(binding) {
    const bridge = this;
    const call = (fields) => bridge.binding({ kind: "d1", binding, ...fields });
    class Statement {
      constructor(sql, params = []) {
        this.sql = sql;
        this.params = params;
      }
      bind(...params) {
        return new Statement(this.sql, params);
      }
      all() {
        return call({ method: "all", sql: this.sql, params: this.params });
      }
      run() {
        return call({ method: "run", sql: this.sql, params: this.params });
      }
      first(column) {
        return call({ method: "first", sql: this.sql, params: this.params, column });
      }
      raw(options) {
        return call({ method: "raw", sql: this.sql, params: this.params, options });
      }
    }
    return {
      prepare: (sql) => new Statement(sql),
      batch: (statements) =>
        call({ method: "batch", statements: statements.map((s) => ({ sql: s.sql, params: s.params })) }),
      exec: (sql) => call({ method: "exec", sql }),
    };
  }

  workflowBinding(binding) {
    const call = (op, fields = {}) => this.binding({ kind: "workflow", binding, op, ...fields });
    const handle = (id) => ({
      id,
      status: () => call("status", { id }),
      pause: () => call("pause", { id }),
      resume: () => call("resume", { id }),
      terminate: () => call("terminate", { id }),
      restart: (options) => call("restart", { id, options }),
      sendEvent: (event) => call("sendEvent", { id, event }),
    });
    return {
      create: async (options) => handle((await call("create", { options })).id),
      createBatch: async (options) => (await call("createBatch", { options })).map((c) => handle(c.id)),
      get: async (id) => handle((await call("get", { id })).id),
    };
  }

  // ------------------------------------------------------------------ runs, as the engine starts them

  async serve(request) {
    try {
      const path = new URL(request.url).pathname;
      const body = unpack(await request.json());
      const value = await this.route(path, body);
      return new Response(JSON.stringify(pack(value)), { headers: { "content-type": "application/json" } });
    } catch (error) {
      this.log(`awf harness: ${error.stack ?? error}`);
      return new Response(String(error.message ?? error), { status: 500 });
    }
  }

  async route(path, body) {
    if (path === "/run/start") return this.start(body.className, body.event);
    const run = this.runs.get(body.runId);
    if (!run) throw new Error(`unknown run ${body.runId}`);
    if (path === "/run/next") return run.take();
    const call = run.calls.get(body.callId);
    if (!call) throw new Error(`unknown step call ${body.callId} of run ${body.runId}`);
    if (path === "/run/callback") {
      try {
        return { ok: true, value: await call.body(body.ctx) };
      } catch (error) {
        return { ok: false, error: errorToJson(error) };
      }
    }
    if (path === "/run/settle") {
      run.calls.delete(body.callId);
      if (body.ok) call.resolve(body.value);
      else call.reject(errorFromJson(body.error));
      return null;
    }
    throw new Error(`unknown path ${path}`);
  }

  start(className, event) {
    const runId = `run-${this.nextRun++}`;
    const run = new Run(runId, event?.instanceId);
    this.runs.set(runId, run);
    if (run.instanceId) this.lastRun.set(run.instanceId, run);
    // Not awaited: the Worker collects the outcome through /run/next.
    this.worker.run(className, event, run.stepStub()).then(
      (value) => run.push({ kind: "return", value }),
      (error) => run.push({ kind: "throw", error: errorToJson(error) }),
    );
    return { runId };
  }

  // The step calls the newest run of an instance issued, in order: [[kind, name], ...].
  steps(instanceId) {
    return this.lastRun.get(instanceId)?.steps ?? [];
  }
}
