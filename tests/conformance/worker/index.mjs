// Conformance worker: one WorkflowEntrypoint that interprets a scenario (FORMAT.md in the shared
// conformance folder) passed as the instance params, plus a small HTTP API the Node driver
// (../driver.mjs) calls through Miniflare's dispatchFetch to reach the workflow binding.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

// Attempt records per instance id: {key: "NAME#K", attempt, start, end, timeout}.
// The engine calls run() on this same worker (same isolate), so a module-level map is visible
// to the fetch handler. It lives outside any step on purpose: replays must not dedupe it,
// because it records what the engine actually ran.
const ATTEMPTS = new Map();

function record(instanceId, rec) {
  if (!ATTEMPTS.has(instanceId)) ATTEMPTS.set(instanceId, []);
  ATTEMPTS.get(instanceId).push(rec);
}

export class ScenarioWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const scenario = event.payload;
    const id = event.instanceId;

    // One `do` operation: pick the attempt entry by ctx.attempt (1-based; the last repeats).
    const runDo = (op) => {
      const callback = async (ctx) => {
        const rec = {
          key: `${op.name}#${ctx.step.count}`,
          attempt: ctx.attempt,
          start: Date.now(),
          end: null,
          // the resolved timeout the engine races this attempt against (default included)
          timeout: ctx.config.timeout,
        };
        record(id, rec);
        const entry = op.attempts[Math.min(ctx.attempt, op.attempts.length) - 1];
        try {
          if (entry.hang_ms) await new Promise((resolve) => setTimeout(resolve, entry.hang_ms));
          if ("throw_value" in entry) throw entry.throw_value; // not an Error (format 2)
          if (entry.throw !== undefined) throw makeError(entry.throw, entry.message);
          if (entry.return_nothing) return undefined;
          if (entry.return_repeat) return entry.return_repeat.text.repeat(entry.return_repeat.times);
          return entry.return;
        } finally {
          rec.end = Date.now();
        }
      };
      return op.config === undefined
        ? step.do(op.name, callback)
        : step.do(op.name, op.config, callback);
    };

    const created = new Date(event.timestamp).getTime();
    const runOp = async (op) => {
      switch (op.op) {
        case "do":
          return runDo(op);
        case "sleep":
          await step.sleep(op.name, op.duration);
          return null; // a sleep's result is recorded as null
        case "sleepUntil":
          // at_ms is relative to the instance's creation (event.timestamp), so a replay asks
          // for the same moment; a negative at_ms is a time in the past.
          await step.sleepUntil(op.name, created + op.at_ms);
          return null;
        case "waitForEvent": {
          const opts = { type: op.type };
          if (op.timeout !== undefined) opts.timeout = op.timeout;
          const ev = await step.waitForEvent(op.name, opts);
          return ev.payload;
        }
        case "parallel": {
          // Each slot is its step's value, or {caught: MESSAGE} when that step has catch: true.
          const slots = op.steps.map((sub) =>
            runOp(sub).then(
              (v) => (v === undefined ? null : v),
              (e) => caught(sub, e),
            ),
          );
          // race (format 2): the first slot to settle wins; the others run on.
          return op.race ? Promise.race(slots) : Promise.all(slots);
        }
        case "throw":
          // run() itself throws, outside any step (format 2).
          if ("throw_value" in op) throw op.throw_value;
          throw makeError(op.throw, op.message);
        default:
          throw new Error(`unknown op ${JSON.stringify(op.op)}`);
      }
    };

    const results = [];
    for (const op of scenario.body) {
      try {
        const value = await runOp(op);
        results.push({ ok: value === undefined ? null : value });
      } catch (e) {
        results.push(caught(op, e));
      }
    }
    // result (format 2): "nothing" makes run() return undefined.
    return scenario.result === "nothing" ? undefined : { results };
  }
}

// What a caught error leaves in the results, by the operation's `catch`:
//   true      {caught: MESSAGE}
//   "name"    {caught: MESSAGE, name: NAME}  (format 2: the error's name as run() sees it)
//   "rethrow" nothing: the workflow catches it and throws it again (format 2)
// No catch: the error propagates.
function caught(op, e) {
  if (!op.catch || op.catch === "rethrow") throw e;
  if (op.catch === "name") return { caught: errorMessage(e), name: errorName(e) };
  return { caught: errorMessage(e) };
}

// An Error of the class a scenario names: the built-in classes, Cloudflare's
// NonRetryableError, or a class of that name declared on the spot (format 2).
const BUILTIN = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };
function makeError(name, message) {
  if (name === "NonRetryableError") return new NonRetryableError(message);
  if (BUILTIN[name]) return new BUILTIN[name](message);
  const Custom = class extends Error {};
  Object.defineProperty(Custom, "name", { value: name });
  const e = new Custom(message);
  e.name = name;
  return e;
}

function errorName(e) {
  return e instanceof Error ? e.name : null;
}

// The engine's text as seen by run(): errors crossing RPC carry "ClassName: " before the message
// for every class but a plain Error, so e.message is already what FORMAT.md expects.
function errorMessage(e) {
  return e instanceof Error ? e.message : String(e);
}

// The params of a second create() with an id in use: an empty scenario, whose output would show
// if the engine ran it.
const DUPLICATE = { name: "duplicate", body: [] };

function json(value, status = 200) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

// Driver API (POST bodies and answers are JSON):
//   POST /create  {params}              -> {id}
//   POST /event   {id, type, payload}   -> {}
//   POST /control {id, op}              -> {}      op: pause | resume | terminate
//   POST /status  {id}                  -> {status, output, error}   (instance.status() as is)
//   POST /attempts {id}                 -> [{key, attempt, start, end, timeout}, ...]
// The binding a request names: a scenario with its own step limit runs on a binding of its own.
function workflow(env, body) {
  const binding = body.binding ?? "WORKFLOW";
  if (!env[binding]) throw new Error(`no workflow binding ${binding}`);
  return env[binding];
}

export default {
  async fetch(request, env) {
    const route = new URL(request.url).pathname;
    const body = request.method === "POST" ? await request.json() : {};
    try {
      switch (route) {
        case "/create": {
          // id (format 2): the scenario's own instance id; otherwise the binding makes one.
          const options = { params: body.params };
          if (body.id !== undefined) options.id = body.id;
          let instance;
          try {
            instance = await workflow(env, body).create(options);
          } catch (e) {
            // An id the engine refuses: create()'s own error is the scenario's answer.
            return json({ create_error: errorMessage(e) });
          }
          return json({ id: instance.id });
        }
        case "/event": {
          const instance = await workflow(env, body).get(body.id);
          await instance.sendEvent({ type: body.type, payload: body.payload });
          return json({});
        }
        case "/control": {
          const instance = await workflow(env, body).get(body.id);
          if (body.op === "create_again") {
            // Format 2: create() again with the instance's own id (and a scenario of its own).
            try {
              await workflow(env, body).create({ id: body.id, params: DUPLICATE });
            } catch (e) {
              return json({ control_error: errorMessage(e) });
            }
            return json({});
          }
          if (!["pause", "resume", "terminate", "restart"].includes(body.op)) {
            return json({ error: `unknown control op ${body.op}` }, 400);
          }
          // The control call's own error (pause of a finished instance, ...) is an answer,
          // not a driver failure: format 2 records it in the trace.
          try {
            // restart({from}) (Miniflare >= 4.20260430.0) when the scenario says where from.
            await (body.from === undefined ? instance[body.op]() : instance.restart({ from: body.from }));
          } catch (e) {
            return json({ control_error: errorMessage(e) });
          }
          return json({});
        }
        case "/status": {
          const instance = await workflow(env, body).get(body.id);
          const s = await instance.status();
          return json({
            status: s.status,
            output: s.output === undefined ? null : s.output,
            error: s.error ? { name: s.error.name, message: s.error.message } : null,
            step_outputs: s.__LOCAL_DEV_STEP_OUTPUTS ?? null,
          });
        }
        case "/attempts":
          return json(ATTEMPTS.get(body.id) ?? []);
        default:
          return json({ error: `no route ${route}` }, 404);
      }
    } catch (e) {
      return json({ error: errorMessage(e) }, 500);
    }
  },
};
