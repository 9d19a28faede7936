// Runs SQL statements on Miniflare's D1, in order on one database, and prints D1's answers as
// JSON: `node d1_probe.mjs CASES.json` where CASES is [{"sql", "params"}, ...]. It records
// tests/sdk/d1_authorizer.json; tests/sdk/test_db_d1.py replays it live. Miniflare is the
// one pinned in tests/conformance.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, "..", "conformance", "node_modules", "miniflare", "dist", "src", "index.js");
const { Miniflare } = await import(pathToFileURL(entry).href);

const mf = new Miniflare({
  modules: true,
  script: `export default { async fetch(request, env) {
    const { sql, params } = await request.json();
    try {
      const result = await env.DB.prepare(sql).bind(...params).all();
      return Response.json({ ok: true, rows: result.results });
    } catch (e) {
      return Response.json({ ok: false, error: String(e && e.message) });
    }
  } }`,
  d1Databases: ["DB"],
});
try {
  const answers = [];
  for (const { sql, params } of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
    const response = await mf.dispatchFetch("http://probe/", {
      method: "POST",
      body: JSON.stringify({ sql, params }),
    });
    answers.push(await response.json());
  }
  process.stdout.write(JSON.stringify(answers) + "\n");
} finally {
  await mf.dispose();
}
