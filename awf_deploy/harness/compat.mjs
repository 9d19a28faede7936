// Which runtime a Python Worker bundle gets from workerd: its compatibility flags, computed from
// the date and the explicit flags with the rules of compatibility-date.capnp, and the check that
// this host (Pyodide 0.28.2, the vendored SDK) is that runtime. Used by pyhost.mjs.

// ---------------------------------------------------------------------------------------------
// Compatibility flags: the Python-relevant rows of src/workerd/io/compatibility-date.capnp, in
// field order (implications are applied in one pass in that order, as compileCompatibilityFlags
// does). enable/disable: $compatEnableFlag / $compatDisableFlag; date: $compatEnableDate;
// implied: $impliedByAfterDate(name, date). experimental: $experimental.

const FLAG_RULES = [
  // pythonWorkers @43
  { enable: "python_workers", implied: ["python_workers_development", "2000-01-01"] },
  // pythonWorkersDevPyodide @58
  { enable: "python_workers_development" },
  // pythonWorkers20250116 @71 (Pyodide 0.28.2)
  { enable: "python_workers_20250116", disable: "no_python_workers_20250116", implied: ["python_workers", "2025-09-29"] },
  // pythonWorkflows @95
  { enable: "python_workflows", disable: "disable_python_workflows", implied: ["python_workers", "2025-09-20"] },
  // pythonNoGlobalHandlers @104
  { enable: "python_no_global_handlers", disable: "disable_python_no_global_handlers", date: "2025-08-14" },
  // pythonWorkersForceNewVendorPath @107
  { enable: "python_workers_force_new_vendor_path", date: "2025-08-11" },
  // pythonDedicatedSnapshot @110
  { enable: "python_dedicated_snapshot", disable: "disable_python_dedicated_snapshot", implied: ["python_workers_20250116", "2025-10-16"] },
  // pythonExternalSDK @140
  { enable: "enable_python_external_sdk", disable: "disable_python_external_sdk", date: "2026-04-21" },
  // pythonCheckRngState @144
  { enable: "python_check_rng_state", disable: "disable_python_check_rng_state", implied: ["python_workers", "2025-12-16"] },
  // pythonWorkflowsImplicitDeps @155
  { enable: "python_workflows_implicit_dependencies", disable: "no_python_workflows_implicit_dependencies", implied: ["python_workers", "2026-02-25"] },
  // pythonRequestHeadersPreserveCommas @157
  { enable: "python_request_headers_preserve_commas", disable: "disable_python_request_headers_preserve_commas", date: "2026-02-17" },
  // pythonProcessPthFiles @176
  { enable: "python_process_pth_files", disable: "disable_python_process_pth_files", date: "2026-05-26" },
  // pythonWorkers20260610 @179 (Pyodide 314.0.4)
  { enable: "python_workers_20260610", disable: "no_python_workers_20260610" },
  // pythonWorkers20260817 @187 (Pyodide 314.0.5)
  { enable: "python_workers_20260817", disable: "no_python_workers_20260817", experimental: true },
];

/**
 * The compat flags in effect for `date` + explicit `flags`, by the capnp rules: a flag is on when
 * named, or when the date is on/after its enable date and its disable flag is not named; then
 * each $impliedByAfterDate turns it on when the date is on/after the given date, the implying
 * flag is on and its own disable flag is not named. Returns { flag: bool } for the table's flags
 * plus any other explicitly named flag (true; this table is not workerd's whole list).
 */
export function computeCompatFlags(date, flags = []) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(String(date))) {
    throw new Error(`compatibilityDate must be YYYY-MM-DD, got ${JSON.stringify(date)}`);
  }
  const named = new Set();
  for (const f of flags) {
    if (named.has(f)) throw new Error(`Compatibility flag specified multiple times: ${f}`);
    named.add(f);
  }
  const out = {};
  const implied = [];
  for (const rule of FLAG_RULES) {
    const byFlag = named.delete(rule.enable);
    const disabled = rule.disable ? named.delete(rule.disable) : false;
    if (byFlag && disabled) {
      throw new Error(`Compatibility flags are mutually contradictory: ${rule.enable} vs ${rule.disable}`);
    }
    const byDate = rule.date !== undefined && date >= rule.date;
    out[rule.enable] = byFlag || (byDate && !disabled);
    if (rule.implied && date >= rule.implied[1] && !disabled) implied.push([rule.enable, rule.implied[0]]);
  }
  for (const [flag, by] of implied) if (out[by]) out[flag] = true;
  for (const rest of named) out[rest] = true; // a flag this table does not model
  return out;
}

export function checkRuntime(flags, date) {
  if (!flags.python_workers) {
    throw new Error("not a Python Worker: the python_workers compatibility flag is off");
  }
  if (flags.python_workers_development || flags.python_workers_20260610 || flags.python_workers_20260817) {
    throw new Error(
      "these compatibility flags select a Pyodide other than 0.28.2 (development / 314.x); this host only has Pyodide 0.28.2"
    );
  }
  if (!flags.python_workers_20250116) {
    throw new Error(
      `compatibility date ${date} runs Pyodide 0.26 on Cloudflare; this host only has Pyodide 0.28.2 ` +
        "(python_workers_20250116: dates >= 2025-09-29)"
    );
  }
  if (!flags.enable_python_external_sdk) {
    throw new Error(
      `compatibility date ${date} uses the Python SDK frozen inside workerd, which this host does not have: ` +
        "the bundle needs enable_python_external_sdk (a date >= 2026-04-21, or the explicit flag) " +
        "so that the vendored workers-runtime-sdk in python_modules/ is used"
    );
  }
}
