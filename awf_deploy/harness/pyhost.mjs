// pyhost.mjs: run an awf-deploy bundle (a Python Worker) on Cloudflare's real Python pieces,
// offline: npm `pyodide` 0.28.2 (what workerd runs for compatibility dates >= 2025-09-29) and
// the `workers-runtime-sdk` vendored in the bundle's `python_modules/`, as pywrangler lays it out.
//
// workerd's own Python loader (src/pyodide/python-entrypoint-helper.ts, internal/python.ts,
// setupPackages.ts, setup_python_search_path.py, introspection.py) cannot run outside workerd,
// so this module does what it does, step by step, in plain Node:
//
//   - the bundle goes into the session filesystem at /session/metadata (read-only, like
//     workerd's metadata FS), `/session/metadata` and the session site-packages are appended
//     to sys.path, `python_modules` is inserted before the first site-packages entry (and the
//     legacy `vendor` dir too unless python_workers_force_new_vendor_path), and `.pth` files in
//     `python_modules` are processed (site.addsitedir) when python_process_pth_files is on;
//   - `_pyodide_entrypoint_helper` (doAnImport, cloudflareWorkersModule, cloudflareSocketsModule,
//     patchWaitUntil, patch_env_helper, workerEntrypoint) and `_cloudflare_compat_flags` are
//     provided as the SDK expects; `js` is globalThis (Pyodide's default);
//   - entrypoint classes are found as introspection.py finds them, a new instance is made per
//     call with (ctx, env), a Workflow's `run` is called directly (relaxed), other methods go
//     through the SDK's python_from_rpc / python_to_rpc like introspection.wrapper_func.
//
// Not emulated: memory snapshots, the top-level entropy guards (workerd's internal `_cloudflare`
// package; without it the SDK's .pth patch loader skips its package patches, as it does under
// native Python), CPU limits, legacy global `on_fetch` handlers, Pyodide 0.26 and 314.x.
//
// Beyond the interface: host.jspi, host.loadMs, host.pyodide, host.unload(), host.close();
// load({..., modules: {"name": moduleObject}, importTimeoutMs}) (extra modules for doAnImport, a
// per-load import limit); worker.importMs, worker.sysPath, worker.drainWaitUntil(). One load()
// runs at a time (calls queue). A synchronous import that overruns its limit is interrupted with
// KeyboardInterrupt through Pyodide's interrupt buffer (a watchdog thread sets it).
//
// JSPI: workerd calls into Python with stack switching (so `run_sync` works). Node 20 has it
// only when started with `--experimental-wasm-stack-switching`; `host.jspi` says whether it is
// on. Without it calls are made without `promising` and `run_sync` raises, everything else is
// the same.

import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { loadPyodide } from "pyodide";
import { checkRuntime, computeCompatFlags } from "./compat.mjs";
import { HOST_PY } from "./hostpy.mjs";

const PYODIDE_VERSION = "0.28.2";
const METADATA = "/session/metadata";
const PYTHON_MODULES = `${METADATA}/python_modules`;
const VENDOR = `${METADATA}/vendor`;

// ---------------------------------------------------------------------------------------------
// Small helpers

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function defaultSink(line) {
  process.stderr.write(line + "\n");
}

// Which files of the bundle reach /session/metadata: wrangler's module rules for a Python Worker
// (*.py; Text: *.txt, *.html, *.sql; Data: *.bin; CompiledWasm: *.wasm; ESModule: *.js, *.mjs)
// and everything pywrangler vendored into python_modules/.
const UPLOADED = /\.(py|txt|html|sql|bin|wasm|js|mjs)$/;
const SKIP_DIRS = new Set(["__pycache__", "node_modules", ".venv", ".wrangler"]);

async function listBundleFiles(root) {
  const files = [];
  async function walk(rel) {
    for (const ent of await readdir(path.join(root, rel), { withFileTypes: true })) {
      if (ent.name.startsWith(".") || SKIP_DIRS.has(ent.name)) continue;
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (ent.isDirectory()) await walk(r);
      else if (ent.isFile() && (r.startsWith("python_modules/") || UPLOADED.test(ent.name))) files.push(r);
    }
  }
  await walk("");
  return files.sort();
}

// A thread that raises KeyboardInterrupt in Python (through Pyodide's interrupt buffer) when a
// synchronous Python phase such as the bundle's import overruns its deadline: a setTimeout in
// this thread could not fire while Python holds it.
class Watchdog {
  constructor(pyodide) {
    this.ctl = new Int32Array(new SharedArrayBuffer(8)); // [sequence, armed timeout ms]
    this.interrupt = new Uint8Array(new SharedArrayBuffer(1));
    pyodide.setInterruptBuffer(this.interrupt);
    const source = `
      const { workerData } = require("node:worker_threads");
      const ctl = new Int32Array(workerData.ctl), intr = new Uint8Array(workerData.intr);
      let seen = 0;
      for (;;) {
        Atomics.wait(ctl, 0, seen);
        seen = Atomics.load(ctl, 0);
        let ms = Atomics.load(ctl, 1);
        while (ms > 0) {
          if (Atomics.wait(ctl, 0, seen, ms) === "timed-out") { intr[0] = 2; break; } // SIGINT
          seen = Atomics.load(ctl, 0);
          ms = Atomics.load(ctl, 1);
        }
      }`;
    this.worker = new Worker(source, {
      eval: true,
      workerData: { ctl: this.ctl.buffer, intr: this.interrupt.buffer },
    });
    this.worker.unref();
  }
  arm(ms) {
    this.interrupt[0] = 0;
    Atomics.store(this.ctl, 1, ms);
    Atomics.add(this.ctl, 0, 1);
    Atomics.notify(this.ctl, 0);
  }
  disarm() {
    Atomics.store(this.ctl, 1, 0);
    Atomics.add(this.ctl, 0, 1);
    Atomics.notify(this.ctl, 0);
    this.interrupt[0] = 0;
  }
  close() {
    return this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// JS side of the runtime the SDK talks to.

// workerd's ExecutionContext: patchWaitUntil only acts on '[object ExecutionContext]'.
class ExecutionContext {
  #pending;
  constructor(pending) {
    this.#pending = pending;
    this.props = {};
  }
  waitUntil(promise) {
    this.#pending.push(Promise.resolve(promise));
  }
  passThroughOnException() {}
  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }
}

class ScheduledController {
  #c;
  constructor(c) {
    this.#c = c ?? {};
  }
  get cron() {
    return this.#c.cron ?? "";
  }
  get scheduledTime() {
    return this.#c.scheduledTime ?? Date.now();
  }
  noRetry() {
    return this.#c.noRetry?.();
  }
}

const waitUntilPatched = new WeakSet();

// Same job as workerd's patchWaitUntil: a Python awaitable handed to ctx.waitUntil is copied so
// that it outlives the call that created it, and destroyed once settled.
function patchWaitUntil(ctx) {
  let tag;
  try {
    tag = Object.prototype.toString.call(ctx);
  } catch {
    return;
  }
  if (tag !== "[object ExecutionContext]" || waitUntilPatched.has(ctx)) return;
  const original = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (p) => {
    const held = p && typeof p.copy === "function" ? p.copy() : p;
    original(
      (async () => {
        try {
          await held;
        } finally {
          if (held && typeof held.destroy === "function") held.destroy();
        }
      })()
    );
  };
  waitUntilPatched.add(ctx);
}

// The base classes `cloudflare:workers` exports (enough for instanceof / naming).
class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
class WorkflowEntrypoint extends WorkerEntrypoint {}
class DurableObject extends WorkerEntrypoint {}
class RpcTarget {}

export class PythonImportError extends Error {
  constructor(module, traceback, headline, cause) {
    const last = headline || (String(traceback ?? "").split("\n").filter((l) => l.trim() !== "").at(-1) ?? "");
    super(`${module} failed at import: ${last}`, { cause });
    this.name = "PythonImportError";
    this.module = module;
    this.traceback = traceback;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Load Pyodide once; `host.load()` then runs one bundle at a time on it.
 * options: stdout(line), stderr(line) (default: process.stderr), loadTimeoutMs (30000),
 * importTimeoutMs (30000), indexURL (the pyodide package dir by default), fetch (what the
 * Python's `js.fetch` is: the Worker's outbound requests; default Node's own).
 */
export async function createPythonHost(options = {}) {
  const stdout = options.stdout ?? defaultSink;
  const stderr = options.stderr ?? defaultSink;
  const loadTimeoutMs = options.loadTimeoutMs ?? 30000;
  const importTimeoutMs = options.importTimeoutMs ?? 30000;

  const t0 = performance.now();
  const pyodide = await withTimeout(
    loadPyodide({
      ...(options.indexURL ? { indexURL: options.indexURL } : {}),
      // As workerd's emscriptenSetup: HOME=/session (also the cwd) and a fixed hash seed.
      env: { HOME: "/session", PYTHONHASHSEED: "111" },
      // `js` is the global scope; only `fetch` may be replaced, to answer outbound requests.
      jsglobals: options.fetch
        ? Object.create(globalThis, { fetch: { value: options.fetch, enumerable: true } })
        : globalThis,
      stdout: (line) => stdout(line),
      stderr: (line) => stderr(line),
    }),
    loadTimeoutMs,
    "loading Pyodide"
  );
  const loadMs = performance.now() - t0;
  if (pyodide.version !== PYODIDE_VERSION) {
    throw new Error(`expected Pyodide ${PYODIDE_VERSION}, got ${pyodide.version}`);
  }
  pyodide.loadPackage = () => {
    throw new Error("pyodide.loadPackage is disabled (as in workerd)");
  };
  const jspi = Boolean(pyodide._module?.jspiSupported);
  const FS = pyodide.FS;

  // As workerd's adjustSysPath: the bundle dir and the session site-packages go at the end.
  const [pymajor, pyminor] = pyodide.runPython("import sys; list(sys.version_info[:2])").toJs();
  const sessionSitePackages = `/session/lib/python${pymajor}.${pyminor}/site-packages`;
  FS.mkdirTree(METADATA);
  FS.mkdirTree(sessionSitePackages);
  pyodide.runPython(
    `import sys; sys.path.append("${METADATA}"); sys.path.append("${sessionSitePackages}"); del sys`
  );

  // As workerd's injectWorkersApi with enable_python_external_sdk: `workers` and `asgi` in the
  // global site-packages only say that the vendored SDK is missing (python_modules/ comes first).
  const sitePackages = `/lib/python${pymajor}.${pyminor}/site-packages`;
  const stub = (name) =>
    `err = ModuleNotFoundError("No module named '${name}'", name="${name}")\n` +
    `err.add_note("The Python Workers SDK is not vendored: python_modules/ needs workers-runtime-sdk ` +
    `(pywrangler / workers-py >= 1.9), or the Worker needs disable_python_external_sdk")\nraise err\n`;
  FS.mkdirTree(`${sitePackages}/workers`);
  FS.writeFile(`${sitePackages}/workers/__init__.py`, stub("workers"));
  FS.writeFile(`${sitePackages}/asgi.py`, stub("asgi"));

  const hostMod = pyodide.runPython("from types import ModuleType; ModuleType('_awf_pyhost')");
  pyodide.runPython(HOST_PY, { globals: hostMod.__dict__, filename: "_awf_pyhost.py" });
  const hostFns = {};
  const py = (name) => (hostFns[name] ??= hostMod.__dict__.get(name));
  const [basePath, baseMetaPath, basePathHooks] = py("state")();

  const watchdog = new Watchdog(pyodide);
  let current = null; // the loaded bundle's state
  let generation = 0;

  function unloadCurrent() {
    if (!current) return [];
    current.active = false;
    for (const name of ["_pyodide_entrypoint_helper"]) {
      try {
        pyodide.unregisterJsModule(name);
      } catch {}
    }
    const gone = py("unload")(basePath, baseMetaPath, basePathHooks, ["_pyodide_entrypoint_helper", "_cloudflare_compat_flags"]);
    const names = gone.toJs();
    gone.destroy();
    for (const obj of current.owned) {
      try {
        obj.destroy();
      } catch {}
    }
    try {
      FS.unmount(METADATA);
    } catch {}
    current = null;
    return names;
  }

  // One load at a time: a load() waits for the one before it to settle.
  let loading = Promise.resolve();
  function load(spec) {
    const next = loading.then(() => loadOne(spec));
    loading = next.catch(() => {});
    return next;
  }

  async function loadOne(spec) {
    const {
      bundleDir,
      mainModule = "entry.py",
      compatibilityDate,
      compatibilityFlags = [],
      env = {},
      modules = {},
      importTimeoutMs: importLimitMs = importTimeoutMs,
    } = spec ?? {};
    if (!bundleDir || !path.isAbsolute(bundleDir)) throw new Error("load(): bundleDir must be an absolute path");
    if (!mainModule.endsWith(".py")) throw new Error("Main module needs to end with a .py file extension");
    const flags = computeCompatFlags(compatibilityDate, compatibilityFlags);
    checkRuntime(flags, compatibilityDate);
    const files = await listBundleFiles(bundleDir);
    if (!files.includes(mainModule)) throw new Error(`the bundle has no main module ${mainModule}`);

    const t1 = performance.now();
    unloadCurrent();
    const gen = ++generation;

    // The bundle, read-only, where workerd's metadata FS puts it.
    FS.mount(FS.filesystems.MEMFS, {}, METADATA);
    const dirs = new Set();
    for (const rel of files) {
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
    }
    for (const d of [...dirs].sort()) FS.mkdir(`${METADATA}/${d}`);
    for (const rel of files) {
      FS.writeFile(`${METADATA}/${rel}`, await readFile(path.join(bundleDir, rel)));
      FS.chmod(`${METADATA}/${rel}`, 0o444);
    }
    for (const d of [...dirs].sort().reverse()) FS.chmod(`${METADATA}/${d}`, 0o555);
    FS.chmod(METADATA, 0o555);

    const state = { active: true, owned: [], pending: [], gen };
    current = state;

    // cloudflare:workers: `env` follows patch_env (workerd keeps it in an async context; a stack
    // is enough here), `waitUntil` collects like the per-call ctx does.
    const envStack = [env];
    const currentEnv = () => envStack[envStack.length - 1];
    const envView = new Proxy(
      {},
      {
        get: (_, k) => Reflect.get(currentEnv(), k),
        has: (_, k) => Reflect.has(currentEnv(), k),
        ownKeys: () => Reflect.ownKeys(currentEnv()),
        getOwnPropertyDescriptor: (_, k) => {
          const d = Reflect.getOwnPropertyDescriptor(currentEnv(), k);
          return d ? { ...d, configurable: true } : undefined;
        },
        getPrototypeOf: () => Reflect.getPrototypeOf(currentEnv()),
      }
    );
    const cloudflareWorkersModule = {
      env: envView,
      waitUntil: (p) => state.pending.push(Promise.resolve(p)),
      WorkerEntrypoint,
      WorkflowEntrypoint,
      DurableObject,
      RpcTarget,
      ...(modules["cloudflare:workers"] ?? {}),
    };
    const cloudflareSocketsModule = modules["cloudflare:sockets"] ?? {
      connect() {
        throw new Error("cloudflare:sockets connect() is not available in the offline Python host");
      },
    };
    async function doAnImport(name) {
      if (name === "cloudflare:workers") return cloudflareWorkersModule;
      if (name === "cloudflare:sockets") return cloudflareSocketsModule;
      if (Object.hasOwn(modules, name)) return modules[name];
      if (/^[a-z][a-z0-9+.-]*:/i.test(name)) throw new Error(`No such module "${name}".`);
      const abs = path.resolve(bundleDir, name.replace(/^\/+/, ""));
      if (abs !== bundleDir && !abs.startsWith(bundleDir + path.sep)) throw new Error(`No such module "${name}".`);
      // The load generation in the URL keeps a reloaded bundle from getting a cached module.
      return await import(`${pathToFileURL(abs).href}?pyhost=${gen}`);
    }
    // The generator workerd's patch_env_helper was (envHelpers.ts): the env is replaced by the
    // patch while the generator is suspended, and restored when it finishes.
    // The SDK passes to_js(kwds), a Map: it is used as a plain object here so that
    // `env.NAME` finds the patched values.
    function* patch_env_helper(patch) {
      if (patch instanceof Map) patch = Object.fromEntries(patch);
      envStack.push(patch);
      try {
        yield;
      } finally {
        const i = envStack.lastIndexOf(patch);
        if (i > 0) envStack.splice(i, 1);
      }
    }
    pyodide.registerJsModule("_pyodide_entrypoint_helper", {
      doAnImport,
      cloudflareWorkersModule,
      cloudflareSocketsModule,
      workerEntrypoint: WorkerEntrypoint,
      patchWaitUntil,
      patch_env_helper,
    });
    const flagsPy = pyodide.toPy(flags);
    py("make_compat_flags_module")(flagsPy);
    flagsPy.destroy();
    py("setup_search_path")(!flags.python_workers_force_new_vendor_path, flags.python_process_pth_files);

    // Import the main module (with stack switching when there is JSPI, as workerd does).
    const mainName = mainModule.slice(0, -3).replaceAll("/", ".");
    let mainMod;
    watchdog.arm(importLimitMs);
    try {
      const importing = jspi
        ? pyodide._api.pyodide_base.pyimport_impl.callPromising(mainName)
        : Promise.resolve().then(() => pyodide.pyimport(mainName));
      mainMod = await withTimeout(importing, importLimitMs, `importing ${mainModule}`);
    } catch (e) {
      watchdog.disarm();
      if (e && e.constructor?.name === "PythonError") {
        const info = py("failed_import")(mainName);
        let [failed, headline] = info.toJs();
        info.destroy();
        let traceback = e.message;
        if (e.type === "KeyboardInterrupt") {
          headline = `TimeoutError: import did not finish within ${importLimitMs} ms`;
          traceback += `\n${headline}`;
        }
        throw new PythonImportError(failed, traceback, headline, e);
      }
      throw e;
    } finally {
      watchdog.disarm();
    }
    state.owned.push(mainMod);
    const importMs = performance.now() - t1;

    const classesPy = py("entrypoint_classes")(mainMod);
    const entrypoints = classesPy.toJs({ dict_converter: Object.fromEntries });
    classesPy.destroy();
    const callMethod = py("call_method");

    const call = (fn, relaxed, args) => {
      if (jspi) return fn.callWithOptions({ relaxed, promising: true }, ...args);
      return relaxed ? fn.callRelaxed(...args) : fn(...args);
    };
    function assertActive() {
      if (!state.active) throw new Error("this bundle was unloaded (host.load() loaded another one)");
    }
    // A new instance per call, as workerd makes one per request: cls(ctx, env).
    async function instance(className) {
      assertActive();
      const cls = mainMod[className];
      if (typeof cls !== "function" || !entrypoints[className]) {
        throw new TypeError(`There is no '${className}' class defined in the Python Worker's main module`);
      }
      const ctx = new ExecutionContext(state.pending);
      const inst = await call(cls, false, [ctx, env]);
      return inst;
    }
    async function callOn(className, prop, relaxed, args) {
      const inst = await instance(className);
      try {
        const method = inst[prop];
        const callable = typeof method === "function";
        method?.destroy?.();
        if (!callable) throw new TypeError(`Method ${prop} does not exist`);
        // Python exceptions reach the caller as Pyodide's own PythonError, unwrapped.
        return await call(callMethod, false, [relaxed, inst, prop, ...args]);
      } finally {
        inst.destroy();
      }
    }
    const unwrap = (v) => (v === null ? undefined : v);

    const worker = {
      flags,
      entrypoints,
      mainModule,
      bundleDir,
      importMs,
      get sysPath() {
        return pyodide.runPython("import sys; list(sys.path)").toJs();
      },
      /** new className(ctx, env).run(event, step); the JS value Python returned. */
      async run(className, event, step) {
        if (flags.python_workflows && entrypoints[className] === "WorkflowEntrypoint") {
          // workerd calls a Workflow's run directly (relaxed), the SDK's wrapper converts.
          const inst = await instance(className);
          const run = inst.run;
          try {
            return unwrap(await call(run, true, [event, step]));
          } finally {
            run.destroy();
            inst.destroy();
          }
        }
        return unwrap(await callOn(className, "run", false, [event, step]));
      },
      /** Default entrypoint's fetch(request): the JS Response the SDK produced. */
      async fetch(request) {
        if (entrypoints.Default !== "WorkerEntrypoint") throw new TypeError("the bundle has no Default WorkerEntrypoint");
        return unwrap(await callOn("Default", "fetch", true, [request]));
      },
      /** Default entrypoint's scheduled(controller). */
      async scheduled(controller) {
        if (entrypoints.Default !== "WorkerEntrypoint") throw new TypeError("the bundle has no Default WorkerEntrypoint");
        return unwrap(await callOn("Default", "scheduled", false, [new ScheduledController(controller)]));
      },
      /** Wait for everything handed to ctx.waitUntil / waitUntil so far (errors are returned). */
      async drainWaitUntil() {
        const all = state.pending.splice(0);
        const settled = await Promise.allSettled(all);
        return settled.filter((s) => s.status === "rejected").map((s) => s.reason);
      },
    };
    return worker;
  }

  return {
    pyodideVersion: pyodide.version,
    pyodide,
    jspi,
    loadMs,
    load,
    /** Unload the current bundle (load() does this itself); returns the module names removed. */
    unload: () => unloadCurrent(),
    async close() {
      unloadCurrent();
      await watchdog.close();
    },
  };
}
