// Talking to Herald. The session (the access token, and the refresh token of the built-in
// login) lives only in this module's memory: never in storage, cookies or the URL, so no other
// origin and no other script can read it. Reloading the page signs out.

let session = null;

/** The claims of a JWT, for display only (Herald verifies tokens; the console never trusts them). */
function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

export function current() {
  return session;
}

export function useToken(token) {
  const trimmed = token.trim();
  const claims = trimmed.startsWith("hk_") ? { sub: "API key" } : claimsOf(trimmed);
  session = { token: trimmed, refresh: null, claims };
  return session;
}

function adopt(tokens) {
  session = { token: tokens.access_token, refresh: tokens.refresh_token, claims: claimsOf(tokens.access_token) };
  return session;
}

/** Signs in with the built-in login; the answer's problem when it fails. */
export async function signIn(tenant, username, password) {
  const answer = await request("POST", "/v1/auth/token", {
    body: { grant_type: "password", tenant, username, password },
    anonymous: true,
  });
  if (answer.status === 200) {
    adopt(answer.body);
    return null;
  }
  return answer.body;
}

async function refresh() {
  if (!session || !session.refresh) return false;
  const answer = await request("POST", "/v1/auth/token", {
    body: { grant_type: "refresh_token", refresh_token: session.refresh },
    anonymous: true,
  });
  if (answer.status !== 200) return false;
  adopt(answer.body);
  return true;
}

export async function signOut() {
  const ending = session;
  session = null;
  if (ending && ending.refresh) {
    await request("POST", "/v1/auth/revoke", { body: { refresh_token: ending.refresh }, anonymous: true });
  }
}

/** Whether the built-in login is on (its key set is published). */
export async function loginAvailable() {
  const response = await fetch("/.well-known/jwks.json");
  return response.ok;
}

/**
 * One request: `{status, headers, body}`, the body parsed when it is JSON. A `401` with a
 * refresh token at hand refreshes once and tries again.
 */
export async function request(method, path, { body, headers = {}, anonymous = false, retried = false } = {}) {
  const sent = { ...headers };
  if (!anonymous && session) sent.authorization = `Bearer ${session.token}`;
  if (body !== undefined) sent["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (response.status === 401 && !anonymous && !retried && (await refresh())) {
    return request(method, path, { body, headers, anonymous, retried: true });
  }
  const type = response.headers.get("content-type") || "";
  const text = await response.text();
  let parsed = text;
  if (type.includes("json") && text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/**
 * Server-Sent Events over fetch (an EventSource cannot send the token): yields `{id, event,
 * data}` until the stream ends or `signal` aborts. `lastEventId` resumes after that event.
 */
export async function* events(path, { lastEventId, signal }) {
  const headers = { accept: "text/event-stream" };
  if (session) headers.authorization = `Bearer ${session.token}`;
  if (lastEventId) headers["last-event-id"] = lastEventId;
  const response = await fetch(path, { headers, signal, cache: "no-store" });
  if (response.status === 401 && (await refresh())) {
    yield* events(path, { lastEventId, signal });
    return;
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `HTTP ${response.status}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = { id: null, event: "message", data: "" };
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const content = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") message.id = content;
        else if (field === "event") message.event = content;
        else if (field === "data") message.data += (message.data ? "\n" : "") + content;
      }
      if (message.data || message.id) yield message;
    }
  }
}
