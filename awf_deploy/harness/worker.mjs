// The Worker that Miniflare runs in place of the Python Worker. Miniflare's own Workflows engine
// calls `run(event, step)` on one of these classes; the class forwards the run to Node, where the
// bundle's Python runs in Pyodide (pyhost.mjs), and carries out every `step.do`, `step.sleep`,
// `step.sleepUntil` and `step.waitForEvent` the Python asks for on the engine's real `step`. Step
// bodies call back into Pyodide. So the engine, its retries, timeouts, sleeps and events, and D1
// are Cloudflare's; only the place where the Python runs differs from workerd.
//
// Node is reached through the service binding AWF_NODE (a function in bridge.mjs). The default
// export's fetch is how Node reaches the bindings (D1, workflows) from outside.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { errorFromJson, errorToJson, pack, unpack } from "./codec.mjs";

async function callNode(env, path, body) {
  const response = await env.AWF_NODE.fetch(`http://awf-node${path}`, {
    method: "POST",
    body: JSON.stringify(pack(body)),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`awf harness: ${path} failed (${response.status}): ${text}`);
  return unpack(JSON.parse(text));
}

function perform(env, step, runId, command) {
  switch (command.kind) {
    case "do": {
      const body = async (ctx) => {
        const answer = await callNode(env, "/run/callback", { runId, callId: command.callId, ctx });
        if (!answer.ok) throw errorFromJson(answer.error);
        return answer.value;
      };
      return command.hasConfig
        ? step.do(command.name, command.config, body)
        : step.do(command.name, body);
    }
    case "sleep":
      return step.sleep(command.name, command.duration);
    case "sleepUntil":
      return step.sleepUntil(command.name, command.timestamp);
    case "waitForEvent":
      return step.waitForEvent(command.name, command.options);
    default:
      return Promise.reject(new Error(`awf harness: unknown step command ${command.kind}`));
  }
}

export function workflowClass(className) {
  const cls = class extends WorkflowEntrypoint {
    async run(event, step) {
      const env = this.env;
      const { runId } = await callNode(env, "/run/start", { className, event });
      for (;;) {
        const commands = await callNode(env, "/run/next", { runId });
        for (const command of commands) {
          if (command.kind === "return") return command.value;
          if (command.kind === "throw") throw errorFromJson(command.error);
          perform(env, step, runId, command)
            .then(
              (value) => callNode(env, "/run/settle", { runId, callId: command.callId, ok: true, value }),
              (error) =>
                callNode(env, "/run/settle", {
                  runId,
                  callId: command.callId,
                  ok: false,
                  error: errorToJson(error),
                }),
            )
            .catch((error) => console.error(`awf harness: settling ${command.name}: ${error}`));
        }
      }
    }
  };
  Object.defineProperty(cls, "name", { value: className });
  return cls;
}

async function instance(env, binding, id) {
  const workflow = env[binding];
  if (!workflow) throw new Error(`no workflow binding ${binding}`);
  return workflow.get(id);
}

async function bindingCall(env, body) {
  switch (body.kind) {
    case "d1": {
      const db = env[body.binding];
      if (body.method === "batch") {
        const statements = body.statements.map((s) => db.prepare(s.sql).bind(...s.params));
        return db.batch(statements);
      }
      if (body.method === "exec") return db.exec(body.sql);
      const statement = db.prepare(body.sql).bind(...body.params);
      if (body.method === "first") {
        return body.column === undefined ? statement.first() : statement.first(body.column);
      }
      if (body.method === "raw") return statement.raw(body.options);
      return statement[body.method]();
    }
    case "workflow": {
      const workflow = env[body.binding];
      if (!workflow) throw new Error(`no workflow binding ${body.binding}`);
      switch (body.op) {
        case "create": {
          const created = await workflow.create(body.options);
          return { id: created.id };
        }
        case "createBatch": {
          const created = await workflow.createBatch(body.options);
          return created.map((c) => ({ id: c.id }));
        }
        case "get":
          return { id: (await workflow.get(body.id)).id };
        case "status":
          return (await instance(env, body.binding, body.id)).status();
        case "sendEvent":
          return (await instance(env, body.binding, body.id)).sendEvent(body.event);
        case "pause":
        case "resume":
        case "terminate":
          return (await instance(env, body.binding, body.id))[body.op]();
        case "restart":
          return (await instance(env, body.binding, body.id)).restart(body.options);
        case "modify": {
          // The engine's own test modifier (what Cloudflare's vitest integration uses), set before
          // the instance is created: sleeps and retry delays pass at once, so a two-week sleep
          // does not take two weeks. Everything else runs as it would.
          const modifier = await workflow.unsafeGetInstanceModifier(body.id);
          if (body.disableSleeps) await modifier.disableSleeps();
          if (body.disableRetryDelays) await modifier.disableRetryDelays();
          return null;
        }
        default:
          throw new Error(`unknown workflow operation ${body.op}`);
      }
    }
    default:
      throw new Error(`unknown binding call ${body.kind}`);
  }
}

export default {
  async fetch(request, env) {
    let body;
    try {
      body = unpack(await request.json());
      const value = await bindingCall(env, body);
      return Response.json(pack({ ok: true, value }));
    } catch (error) {
      return Response.json(pack({ ok: false, error: errorToJson(error) }));
    }
  },
};
