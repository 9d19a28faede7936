// Values that cross between Node and the Worker in Miniflare travel as JSON, but the Workflows
// engine hands out more than JSON: Dates (event timestamps), `undefined` (a step that returns
// nothing) and bytes (D1 BLOBs). They are tagged on the way out and rebuilt on the way in, so each
// side sees the types the engine produced. This file is loaded in both places.

const TAG = "$awf";

export function pack(value) {
  if (value === undefined) return { [TAG]: "undefined" };
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) return { [TAG]: "number", text: String(value) };
    if (typeof value === "bigint") return { [TAG]: "bigint", text: value.toString() };
    return value;
  }
  if (value instanceof Date) return { [TAG]: "date", ms: value.getTime() };
  if (value instanceof ArrayBuffer) return { [TAG]: "bytes", data: Array.from(new Uint8Array(value)) };
  if (ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return { [TAG]: "bytes", data: Array.from(bytes) };
  }
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : pack(item)));
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    // JSON.stringify drops undefined members; so does the engine when it stores a value.
    if (item !== undefined) out[key] = pack(item);
  }
  return out;
}

export function unpack(value) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(unpack);
  switch (value[TAG]) {
    case "undefined":
      return undefined;
    case "date":
      return new Date(value.ms);
    case "bytes":
      return new Uint8Array(value.data).buffer;
    case "number":
      return Number(value.text);
    case "bigint":
      return BigInt(value.text);
    default: {
      const out = {};
      for (const [key, item] of Object.entries(value)) out[key] = unpack(item);
      return out;
    }
  }
}

// Errors cross as {name, message, type}: `type` is a Pyodide PythonError's Python class name.
export function errorToJson(error) {
  if (error instanceof Error || (error && typeof error === "object" && "message" in error)) {
    const out = { name: String(error.name ?? "Error"), message: String(error.message ?? "") };
    if (typeof error.type === "string") out.type = error.type;
    return out;
  }
  return { name: "Error", message: String(error), thrown: pack(error) };
}

// Pyodide's PythonError: `name` lives on the prototype, `type` on the instance. A Python
// exception that escapes to JavaScript is one of these, wherever it is re-created.
export class PythonError extends Error {
  constructor(message, type) {
    super(message);
    this.type = type;
  }
}
Object.defineProperty(PythonError.prototype, "name", { value: "PythonError" });

export function errorFromJson(data) {
  if (data.name === "PythonError") return new PythonError(data.message, data.type);
  const error = new Error(data.message);
  if (data.name !== "Error") error.name = data.name;
  return error;
}
