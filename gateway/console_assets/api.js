// The gateway's JSON and SSE APIs, with the key from session storage as a bearer header.
// The key never goes into a URL: streams use fetch (not EventSource) so a header can be sent.

const KEY = "llmesh.console.key";

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.reason = err.reason || "";
  }
}

function headers() {
  const out = { "content-type": "application/json" };
  const key = getKey();
  if (key) out.authorization = `Bearer ${key}`;
  return out;
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return new ApiError(res.status, body);
}

export async function getJson(path) {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw await failure(res);
  return res.json();
}

export async function postJson(path, body) {
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!res.ok) throw await failure(res);
  return res.json();
}

// POST `body` to an SSE endpoint and call onEvent with each event's JSON until the stream
// ends; an `event: error` becomes a thrown ApiError. Aborting `signal` cancels the call.
export async function stream(path, body, onEvent, signal) {
  const res = await fetch(path, {
    method: "POST",
    headers: headers(),
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (!data.length) continue;
      const payload = JSON.parse(data.join("\n"));
      if (name === "error") throw new ApiError((payload.error && payload.error.code) || 0, payload);
      onEvent(payload);
    }
  }
}
