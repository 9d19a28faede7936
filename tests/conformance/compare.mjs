#!/usr/bin/env node
// Compares traces by FORMAT.md's rules: status, output, error.message and attempts equal;
// retry_gaps_ms with the same keys and lengths, each produced gap within [formula, formula + 500]
// where the formula is taken from the scenario's step config (delay, backoff).
//
//   node compare.mjs SCENARIO_DIR PRODUCED_DIR     (compares every NAME.json in SCENARIO_DIR
//                                                   that has NAME.trace.json in both folders)
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";

const [scenarioDir, producedDir] = process.argv.slice(2);
if (!scenarioDir || !producedDir) {
  process.stderr.write("usage: node compare.mjs SCENARIO_DIR PRODUCED_DIR\n");
  process.exit(2);
}
const read = (p) => JSON.parse(readFileSync(p, "utf8"));
const UNIT_MS = { year: 315576e5, month: 2592e6, week: 6048e5, day: 864e5, hour: 36e5, minute: 6e4, second: 1e3 };
const durationMs = (d) => {
  if (!isNaN(+d)) return +d;
  const [, v, u] = String(d).match(/^([^ ]+) +(\w\w*?)s?$/) || [, d];
  return +v * (UNIT_MS[u] || 1);
};

// Whether the engine's do() throws before numbering the call (FORMAT.md, format 2): the step
// limit, an invalid name (over 256 UTF-16 units, a control character) or an invalid config
// (isValidStepConfig: its zod schema, then NaN durations and a timeout loosely equal to 0).
const isNumber = (v) => typeof v === "number";
const isDurationValue = (v) => (isNumber(v) && v >= 0) || typeof v === "string";
function validConfig(c) {
  if (c === undefined) return true;
  if (typeof c !== "object" || c === null || Array.isArray(c)) return false;
  if (Object.keys(c).some((k) => k !== "retries" && k !== "timeout")) return false;
  const r = c.retries;
  if (r !== undefined) {
    if (typeof r !== "object" || r === null || Array.isArray(r)) return false;
    if (Object.keys(r).some((k) => !["limit", "delay", "backoff"].includes(k))) return false;
    if (!isDurationValue(r.delay) || !(isNumber(r.limit) && r.limit >= 0)) return false;
    if (r.backoff !== undefined && !["constant", "linear", "exponential"].includes(r.backoff)) return false;
    if (Number.isNaN(durationMs(r.delay))) return false;
  }
  if (c.timeout !== undefined) {
    if (!isDurationValue(c.timeout)) return false;
    // eslint-disable-next-line eqeqeq -- the engine's own loose comparison
    if (c.timeout == 0 || Number.isNaN(durationMs(c.timeout))) return false;
  }
  return true;
}
const validName = (n) => n.length <= 256 && !/[\u0000-\u001f]/.test(n);

// NAME#K -> retries config of that step (engine defaults: delay 1000 ms, exponential), K as
// the engine numbers the calls of a name: rejected calls take no number.
function retryConfigs(scenario) {
  const count = {};
  const out = {};
  let calls = 0;
  const limit = scenario.step_limit ?? 10_000;
  const visit = (op) => {
    if (op.op === "parallel") return op.steps.forEach(visit);
    if (op.op !== "do") return;
    calls++;
    if (calls > limit || !validName(op.name) || !validConfig(op.config)) return;
    count[op.name] = (count[op.name] ?? 0) + 1;
    out[`${op.name}#${count[op.name]}`] = { delay: 1000, backoff: "exponential", ...op.config?.retries };
  };
  scenario.body.forEach(visit);
  return out;
}
const formula = ({ delay, backoff }, n) =>
  backoff === "exponential" ? durationMs(delay) * 2 ** (n - 1) : backoff === "linear" ? durationMs(delay) * n : durationMs(delay);

let bad = 0;
let checked = 0;
for (const file of readdirSync(scenarioDir).filter((f) => f.endsWith(".json") && !f.endsWith(".trace.json")).sort()) {
  const name = file.slice(0, -".json".length);
  const expectedPath = join(scenarioDir, `${name}.trace.json`);
  const producedPath = join(producedDir, `${name}.trace.json`);
  if (!existsSync(expectedPath) || !existsSync(producedPath)) continue;
  checked++;
  const [exp, got, scenario] = [read(expectedPath), read(producedPath), read(join(scenarioDir, file))];
  const problems = [];
  for (const k of ["status", "output", "attempts"]) {
    if (!isDeepStrictEqual(exp[k], got[k])) problems.push(`${k}: expected ${JSON.stringify(exp[k])}, got ${JSON.stringify(got[k])}`);
  }
  if ((exp.runs !== undefined || got.runs !== undefined) && !isDeepStrictEqual(exp.runs, got.runs)) {
    problems.push(`runs: expected ${JSON.stringify(exp.runs)}, got ${JSON.stringify(got.runs)}`);
  }
  if (exp.error?.message !== got.error?.message) {
    problems.push(`error.message: expected ${JSON.stringify(exp.error?.message)}, got ${JSON.stringify(got.error?.message)}`);
  }
  const configs = retryConfigs(scenario);
  const ek = Object.keys(exp.retry_gaps_ms).sort();
  const gk = Object.keys(got.retry_gaps_ms).sort();
  if (!isDeepStrictEqual(ek, gk)) problems.push(`retry_gaps_ms keys: expected ${ek}, got ${gk}`);
  for (const key of gk) {
    const gaps = got.retry_gaps_ms[key];
    if (exp.retry_gaps_ms[key] && exp.retry_gaps_ms[key].length !== gaps.length) {
      problems.push(`retry_gaps_ms[${key}]: expected ${exp.retry_gaps_ms[key].length} gaps, got ${gaps.length}`);
    }
    if (!configs[key]) {
      // Another engine version may number a call this one rejects: say so, do not crash.
      problems.push(`retry_gaps_ms[${key}]: no step the engine numbers ${key} in the scenario`);
      continue;
    }
    gaps.forEach((gap, i) => {
      const f = formula(configs[key], i + 1);
      if (!(gap >= f && gap <= f + 500)) problems.push(`retry_gaps_ms[${key}][${i}] = ${gap}, want ${f}..${f + 500}`);
    });
  }
  if (problems.length > 0) bad++;
  process.stdout.write(`${problems.length ? "MISMATCH" : "ok      "} ${name}\n${problems.map((p) => `    ${p}\n`).join("")}`);
}
process.stdout.write(`${checked - bad} matched, ${bad} mismatched\n`);
process.exit(bad > 0 || checked === 0 ? 1 : 0);
