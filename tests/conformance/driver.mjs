#!/usr/bin/env node
// Runs conformance scenarios on Cloudflare's local Workflows engine (Miniflare/workerd) and writes
// one trace per scenario, as described in FORMAT.md of the shared conformance folder.
//
//   node driver.mjs --out DIR [--jobs N] [--miniflare DIR] SCENARIO.json [SCENARIO.json ...]
//
// --jobs N (default 8): scenarios run N at a time, each as its own instance of one Miniflare.
// --miniflare DIR (or $AWF_MINIFLARE_DIR): the miniflare package to run, for example a newer
// one installed elsewhere (`npm i miniflare@VERSION` in a scratch folder, then
// DIR=that/node_modules/miniflare); default this folder's node_modules/miniflare (the pin). A
// scenario whose "engine" asks for a newer miniflare than DIR's is refused before it starts.
//
// Miniflare starts once, offline (cf: false); each scenario runs as a fresh workflow instance
// whose params are the whole scenario (worker/index.mjs interprets it).
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const COMPATIBILITY_DATE = "2026-04-01";
const SCENARIO_LIMIT_MS = 20_000;
const POLL_MS = 10;
const PAUSED_STABLE_MS = 300;
const TERMINAL = new Set(["complete", "errored", "terminated"]);

function fail(message) {
  process.stderr.write(`driver: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- arguments and validation

function parseArgs(argv) {
  let out = null;
  let jobs = 8;
  let miniflareDir = process.env.AWF_MINIFLARE_DIR || join(HERE, "node_modules", "miniflare");
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") {
      if (i + 1 >= argv.length) fail("--out needs a directory");
      out = argv[++i];
    } else if (a === "--jobs") {
      jobs = Number(argv[++i]);
      if (!Number.isInteger(jobs) || jobs < 1) fail("--jobs needs a whole number >= 1");
    } else if (a === "--miniflare") {
      if (i + 1 >= argv.length) fail("--miniflare needs the folder of a miniflare package");
      miniflareDir = argv[++i];
    } else if (a.startsWith("--out=")) {
      out = a.slice("--out=".length);
    } else if (a === "-h" || a === "--help") {
      process.stdout.write("usage: node driver.mjs --out DIR [--jobs N] [--miniflare DIR] SCENARIO.json [SCENARIO.json ...]\n");
      process.exit(0);
    } else if (a.startsWith("-")) {
      fail(`unknown option ${a}`);
    } else {
      files.push(a);
    }
  }
  if (!out) fail("missing --out DIR (usage: node driver.mjs --out DIR SCENARIO.json [...])");
  if (files.length === 0) fail("no scenario files given");
  return { out, files, jobs, miniflareDir };
}

// "engine": ">=VERSION" (format 2): the oldest miniflare that has what the scenario uses.
const ENGINE_RE = /^>=(\d+(?:\.\d+)*)$/;
function versionAtLeast(have, want) {
  const h = have.split(".").map(Number);
  const w = want.split(".").map(Number);
  for (let i = 0; i < Math.max(h.length, w.length); i++) {
    const d = (h[i] ?? 0) - (w[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

async function loadMiniflare(dir) {
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  } catch (e) {
    fail(`no miniflare package at ${dir} (${e.message}): run \`npm ci\` here, or point --miniflare at one`);
  }
  const { Miniflare } = await import(pathToFileURL(join(dir, pkg.main ?? "dist/src/index.js")).href);
  return { Miniflare, version: pkg.version };
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
// Any number or string: the engine reads durations with its own parser (itty-time's ms()),
// and what it makes of odd ones is part of what the scenarios record.
const isDuration = (v) => typeof v === "number" || typeof v === "string";
const FORMATS = [1, 2];
// Cloudflare's own ceiling for a workflow's configured step limit (limits.steps).
const MAX_STEP_LIMIT = 25_000;
// The workflow binding a scenario runs on: its own step limit gets a binding of its own.
const bindingOf = (s) => (s.step_limit === undefined ? "WORKFLOW" : `WORKFLOW_LIMIT_${s.step_limit}`);
const CATCHES = [true, false, "name", "rethrow"];

// Throws an Error naming the first problem found in a scenario; returns nothing when it is valid.
function validateScenario(s) {
  if (!isObject(s)) throw new Error("scenario must be a JSON object");
  if (typeof s.name !== "string" || !/^[A-Za-z0-9._-]+$/.test(s.name)) {
    throw new Error('"name" must be a non-empty string of letters, digits, ".", "_" or "-"');
  }
  if (!Array.isArray(s.body)) throw new Error('"body" must be a list of operations');
  const checkDo = (op, where) => {
    if (typeof op.name !== "string" || op.name === "") throw new Error(`${where}: "name" must be a non-empty string`);
    if (op.config !== undefined && !isObject(op.config)) throw new Error(`${where}: "config" must be an object`);
    if (!Array.isArray(op.attempts) || op.attempts.length === 0) {
      throw new Error(`${where}: "attempts" must be a non-empty list`);
    }
    op.attempts.forEach((a, j) => {
      const w = `${where}.attempts[${j}]`;
      if (!isObject(a)) throw new Error(`${w}: must be an object`);
      const hasReturn = "return" in a;
      const hasThrow = "throw" in a;
      const kinds = ["return", "throw", "throw_value", "return_nothing", "return_repeat"].filter((k) => k in a);
      if (kinds.length !== 1) {
        throw new Error(
          `${w}: needs exactly one of "return", "throw", "throw_value", "return_nothing" or "return_repeat"`,
        );
      }
      if ("return_repeat" in a) {
        const r = a.return_repeat;
        if (!isObject(r) || typeof r.text !== "string" || !Number.isInteger(r.times) || r.times < 0) {
          throw new Error(`${w}: "return_repeat" must be {"text": string, "times": whole number >= 0}`);
        }
        if (r.text.length * r.times > 1 << 24) throw new Error(`${w}: "return_repeat" is over 16,777,216 characters`);
      }
      if (hasThrow && (typeof a.throw !== "string" || !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(a.throw))) {
        throw new Error(`${w}: "throw" must be an error class name`);
      }
      if (hasThrow && typeof a.message !== "string") throw new Error(`${w}: "message" must be a string`);
      if (a.hang_ms !== undefined && !(Number.isFinite(a.hang_ms) && a.hang_ms >= 0)) {
        throw new Error(`${w}: "hang_ms" must be a number >= 0`);
      }
    });
  };
  if (s.format !== undefined && !FORMATS.includes(s.format)) throw new Error('"format" must be 1 or 2');
  const checkOp = (op, where, inParallel) => {
    if (!isObject(op)) throw new Error(`${where}: must be an object`);
    if (op.catch !== undefined && !CATCHES.includes(op.catch)) {
      throw new Error(`${where}: "catch" must be true, false, "name" or "rethrow"`);
    }
    if (inParallel && op.op === "parallel") throw new Error(`${where}: "parallel" inside "parallel"`);
    switch (op.op) {
      case "do":
        checkDo(op, where);
        break;
      case "sleep":
        if (typeof op.name !== "string" || op.name === "") throw new Error(`${where}: "name" must be a non-empty string`);
        if (!isDuration(op.duration)) throw new Error(`${where}: "duration" must be a number or a string`);
        break;
      case "waitForEvent":
        if (typeof op.name !== "string" || op.name === "") throw new Error(`${where}: "name" must be a non-empty string`);
        if (typeof op.type !== "string" || op.type === "") throw new Error(`${where}: "type" must be a non-empty string`);
        if (op.timeout !== undefined && !isDuration(op.timeout)) throw new Error(`${where}: "timeout" must be a number or a string`);
        break;
      case "sleepUntil":
        if (typeof op.name !== "string" || op.name === "") throw new Error(`${where}: "name" must be a non-empty string`);
        if (!Number.isFinite(op.at_ms)) throw new Error(`${where}: "at_ms" must be a number`);
        break;
      case "throw": {
        // run() itself throws, outside any step (format 2; top level, never caught)
        if (inParallel) throw new Error(`${where}: "throw" inside "parallel"`);
        if (op.catch !== undefined && op.catch !== false) throw new Error(`${where}: a "throw" takes no "catch"`);
        const kinds = ["throw", "throw_value"].filter((k) => k in op);
        if (kinds.length !== 1) throw new Error(`${where}: needs exactly one of "throw" or "throw_value"`);
        if ("throw" in op && (typeof op.throw !== "string" || !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(op.throw))) {
          throw new Error(`${where}: "throw" must be an error class name`);
        }
        if ("throw" in op && typeof op.message !== "string") throw new Error(`${where}: "message" must be a string`);
        break;
      }
      case "parallel": {
        if (!Array.isArray(op.steps) || op.steps.length === 0) throw new Error(`${where}: "steps" must be a non-empty list`);
        if (op.race !== undefined && typeof op.race !== "boolean") throw new Error(`${where}: "race" must be a boolean`);
        const names = new Set();
        op.steps.forEach((sub, j) => {
          const w = `${where}.steps[${j}]`;
          checkOp(sub, w, true);
          const id = `${sub.op}:${sub.name}`;
          if (names.has(id)) throw new Error(`${w}: two steps named ${JSON.stringify(sub.name)} in one parallel`);
          names.add(id);
        });
        break;
      }
      default:
        throw new Error(`${where}: unknown op ${JSON.stringify(op.op)} (do, sleep, sleepUntil, waitForEvent, parallel, throw)`);
    }
  };
  s.body.forEach((op, i) => checkOp(op, `body[${i}]`, false));
  // Any string: an id the engine refuses is recorded as create()'s error.
  if (s.id !== undefined && typeof s.id !== "string") throw new Error('"id" must be a string');
  if (
    s.step_limit !== undefined &&
    !(Number.isInteger(s.step_limit) && s.step_limit >= 1 && s.step_limit <= MAX_STEP_LIMIT)
  ) {
    throw new Error(`"step_limit" must be a whole number from 1 to ${MAX_STEP_LIMIT}`);
  }
  if (s.engine !== undefined && !(typeof s.engine === "string" && ENGINE_RE.test(s.engine))) {
    throw new Error('"engine" must be ">=VERSION", for example ">=4.20260430.0"');
  }
  if (s.step_outputs !== undefined && typeof s.step_outputs !== "boolean") {
    throw new Error('"step_outputs" must be true or false');
  }
  if (s.runs !== undefined && typeof s.runs !== "boolean") throw new Error('"runs" must be true or false');
  if (s.result !== undefined && !["results", "nothing"].includes(s.result)) {
    throw new Error('"result" must be "results" or "nothing"');
  }
  const checkAfter = (a, w) => {
    if (!isObject(a)) throw new Error(`${w}: must be an object`);
    if (!(Number.isFinite(a.after_ms) && a.after_ms >= 0)) throw new Error(`${w}: "after_ms" must be a number >= 0`);
  };
  if (s.events !== undefined && !Array.isArray(s.events)) throw new Error('"events" must be a list');
  (s.events ?? []).forEach((e, i) => {
    checkAfter(e, `events[${i}]`);
    if (typeof e.type !== "string" || e.type === "") throw new Error(`events[${i}]: "type" must be a non-empty string`);
  });
  if (s.control !== undefined && !Array.isArray(s.control)) throw new Error('"control" must be a list');
  (s.control ?? []).forEach((c, i) => {
    checkAfter(c, `control[${i}]`);
    if (!["pause", "resume", "terminate", "restart", "create_again"].includes(c.op)) {
      throw new Error(`control[${i}]: "op" must be "pause", "resume", "terminate", "restart" or "create_again"`);
    }
    if (c.from !== undefined) {
      // restart({from}): {name, count?, type?}, handed to the engine as it is.
      if (c.op !== "restart") throw new Error(`control[${i}]: "from" goes with "restart" only`);
      if (!isObject(c.from) || typeof c.from.name !== "string") {
        throw new Error(`control[${i}]: "from" must be {"name": STEP, "count"?: K, "type"?: TYPE}`);
      }
      const extra = Object.keys(c.from).filter((k) => !["name", "count", "type"].includes(k));
      if (extra.length > 0) throw new Error(`control[${i}].from: unknown key ${JSON.stringify(extra[0])}`);
    }
  });
}

function loadScenario(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
  let scenario;
  try {
    scenario = JSON.parse(text);
  } catch (e) {
    fail(`${file}: not valid JSON: ${e.message}`);
  }
  try {
    validateScenario(scenario);
  } catch (e) {
    fail(`${file}: bad scenario: ${e.message}`);
  }
  return scenario;
}

// ---------------------------------------------------------------- trace from attempt records

// Duration to milliseconds, as the engine parses it (itty-time's ms()).
const UNIT_MS = { year: 315576e5, month: 2592e6, week: 6048e5, day: 864e5, hour: 36e5, minute: 6e4, second: 1e3 };
function durationMs(d) {
  if (!isNaN(+d)) return +d;
  const [, value, unit] = String(d).match(/^([^ ]+) +(\w\w*?)s?$/) || [, d];
  return +value * (UNIT_MS[unit] || 1);
}

// attempts: NAME#K -> attempts started; retry_gaps_ms: NAME#K -> gaps between one attempt's
// failure and the next attempt's start. A failed attempt's failure time is when its callback
// threw, or its start + the step timeout when it ran longer than that (the engine gave up on it
// then; the callback itself runs on). Only attempts followed by another one are failures.
function countRuns(records) {
  const runs = {};
  for (const r of records) runs[r.key] = (runs[r.key] ?? 0) + 1;
  return runs;
}

function attemptsAndGaps(records) {
  const byKey = new Map();
  for (const r of records) {
    if (!byKey.has(r.key)) byKey.set(r.key, new Map());
    // one record per attempt number (the first), even if a replay ran it again
    if (!byKey.get(r.key).has(r.attempt)) byKey.get(r.key).set(r.attempt, r);
  }
  const attempts = {};
  const gaps = {};
  for (const [key, perAttempt] of byKey) {
    const list = [...perAttempt.values()].sort((a, b) => a.attempt - b.attempt);
    attempts[key] = list.length;
    if (list.length > 1) {
      gaps[key] = list.slice(1).map((next, i) => {
        const prev = list[i];
        const deadline = prev.start + durationMs(prev.timeout);
        const failedAt = prev.end === null ? deadline : Math.min(prev.end, deadline);
        return next.start - failedAt;
      });
    }
  }
  return { attempts, gaps };
}

// ---------------------------------------------------------------- running one scenario

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function call(mf, route, body) {
  const res = await mf.dispatchFetch(`http://conformance.local${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (!res.ok) throw new Error(`${route} failed (${res.status}): ${answer.error ?? JSON.stringify(answer)}`);
  return answer;
}

async function runScenario(mf, scenario) {
  const binding = bindingOf(scenario);
  const made = await call(mf, "/create", { binding, params: scenario, id: scenario.id });
  if (made.create_error !== undefined) {
    // No instance: create() itself threw (an id the engine refuses). Nothing else is sent.
    const trace = {
      name: scenario.name,
      status: "not-created",
      output: null,
      error: null,
      attempts: {},
      retry_gaps_ms: {},
      control_errors: [{ op: "create", message: made.create_error }],
    };
    if (scenario.step_outputs) trace.step_outputs = null;
    return trace;
  }
  const { id } = made;
  const created = Date.now();

  // Driver actions sorted by time (stable, so same-time actions keep file order: events first).
  const actions = [
    ...(scenario.events ?? []).map((e) => ({ kind: "event", ...e })),
    ...(scenario.control ?? []).map((c) => ({ kind: "control", ...c })),
  ].sort((a, b) => a.after_ms - b.after_ms);
  let controlsLeft = actions.filter((a) => a.kind === "control").length;
  const controlErrors = [];
  let lastAction = created;
  let pausedSince = null;

  let status;
  for (;;) {
    const elapsed = Date.now() - created;
    while (actions.length > 0 && actions[0].after_ms <= elapsed) {
      const a = actions.shift();
      if (a.kind === "event") {
        await call(mf, "/event", { binding, id, type: a.type, payload: a.payload ?? null });
      } else {
        const answer = await call(mf, "/control", { binding, id, op: a.op, from: a.from });
        if (answer.control_error !== undefined) {
          controlErrors.push({ op: a.op, after_ms: a.after_ms, message: answer.control_error });
        }
        controlsLeft--;
      }
      lastAction = Date.now();
      pausedSince = null;
    }
    status = await call(mf, "/status", { binding, id });
    // Format 2 sends every action, also to a finished instance (what a control call does then
    // is part of the trace); format 1 stops at a terminal status.
    if (TERMINAL.has(status.status) && ((scenario.format ?? 1) < 2 || actions.length === 0)) break;
    if (Date.now() - created >= SCENARIO_LIMIT_MS) break;
    // `paused` with nothing left to do ends the scenario, but only once it is stable: on a
    // loaded machine a status read can still say `paused` just after a resume was sent, before
    // the engine has taken it in. Stable = read as paused for PAUSED_STABLE_MS in a row, all of
    // them after the last action.
    if (status.status === "paused" && controlsLeft === 0) {
      pausedSince ??= Date.now();
      if (Date.now() - pausedSince >= PAUSED_STABLE_MS && pausedSince > lastAction) break;
    } else {
      pausedSince = null;
    }
    const nextAction = actions.length > 0 ? actions[0].after_ms - (Date.now() - created) : POLL_MS;
    await sleep(Math.max(0, Math.min(POLL_MS, nextAction)));
  }

  const records = await call(mf, "/attempts", { binding, id });
  const { attempts, gaps } = attemptsAndGaps(records);
  const trace = {
    name: scenario.name,
    status: status.status,
    output: status.status === "complete" ? status.output : null,
    error: status.status === "errored" && status.error ? { message: status.error.message } : null,
    attempts,
    retry_gaps_ms: gaps,
  };
  if ((scenario.format ?? 1) >= 2) {
    // Format 2: the error's name too, and what the control calls themselves threw.
    if (trace.error) trace.error.name = status.error.name ?? null;
    trace.control_errors = controlErrors.map(({ op, message }) => ({ op, message }));
    // "step_outputs": true asks for the status field Miniflare adds (__LOCAL_DEV_STEP_OUTPUTS).
    if (scenario.step_outputs) trace.step_outputs = status.step_outputs;
    // "runs": true counts every attempt that started, re-runs after a restart included.
    if (scenario.runs) trace.runs = countRuns(records);
  }
  return trace;
}

// ---------------------------------------------------------------- main

async function main() {
  const { out, files, jobs, miniflareDir } = parseArgs(process.argv.slice(2));
  const scenarios = files.map(loadScenario); // validate everything before starting workerd
  const { Miniflare, version } = await loadMiniflare(miniflareDir);
  for (const [i, s] of scenarios.entries()) {
    const want = s.engine === undefined ? null : ENGINE_RE.exec(s.engine)[1];
    if (want !== null && !versionAtLeast(version, want)) {
      fail(
        `${files[i]}: needs miniflare ${s.engine}, ${miniflareDir} is ${version}: ` +
          "install a newer one elsewhere and pass --miniflare DIR (or $AWF_MINIFLARE_DIR)",
      );
    }
  }
  const names = new Set();
  for (const [i, s] of scenarios.entries()) {
    if (names.has(s.name)) fail(`${files[i]}: scenario name ${JSON.stringify(s.name)} given twice`);
    names.add(s.name);
  }
  mkdirSync(out, { recursive: true });

  const mf = new Miniflare({
    modules: true,
    scriptPath: join(HERE, "worker", "index.mjs"),
    compatibilityDate: COMPATIBILITY_DATE,
    cf: false, // do not fetch the request.cf data: no network
    host: "127.0.0.1",
    port: 0,
    workflows: {
      WORKFLOW: { name: "conformance", className: "ScenarioWorkflow" },
      ...Object.fromEntries(
        [...new Set(scenarios.filter((s) => s.step_limit !== undefined).map((s) => s.step_limit))].map((n) => [
          `WORKFLOW_LIMIT_${n}`,
          { name: `conformance-limit-${n}`, className: "ScenarioWorkflow", stepLimit: n },
        ]),
      ),
    },
  });
  let failed = 0;
  try {
    await mf.ready;
    // Scenarios run concurrently in this one Miniflare, each as its own instance; `jobs` at a
    // time, so that a long idle scenario (one that runs to the 20 s limit) costs no more than
    // its own time.
    let next = 0;
    const worker = async () => {
      while (next < scenarios.length) {
        const i = next++;
        const scenario = scenarios[i];
        const started = Date.now();
        let trace;
        try {
          trace = await runScenario(mf, scenario);
        } catch (e) {
          failed++;
          process.stderr.write(`${scenario.name}: driver error: ${e.message}\n`);
          continue;
        }
        writeFileSync(join(out, `${scenario.name}.trace.json`), JSON.stringify(trace, null, 2) + "\n");
        process.stderr.write(
          `${scenario.name}: ${trace.status} in ${Date.now() - started} ms (${basename(files[i])})\n`,
        );
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  } finally {
    await mf.dispose();
  }
  if (failed > 0) {
    process.stderr.write(`driver: ${failed} scenario(s) could not be run\n`);
    process.exit(1);
  }
}

main().catch((e) => {
  process.stderr.write(`driver: ${e.stack ?? e}\n`);
  process.exit(1);
});
