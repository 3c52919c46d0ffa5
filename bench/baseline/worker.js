// The benchmark's baseline: a plain JavaScript Worker doing what outcall's Worker does on its two hottest
// routes, with the same checks, so `./dev bench` can compare the two side by side under the same
// `wrangler dev`, gateway, PostgREST and Postgres (`start_baseline` in `dev` runs it). Never deployed; outcall
// itself is Rust (functions/edge).
//   GET  /health       every variable outcall needs is set → {"configured": true|false}
//   POST /vapi/events  an assistant-request: the credential, a capped body, the row's context through one
//                      PostgREST call (call_context), flattened into the assistant's variables

const VARIABLES = [
  "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER",
  "TWILIO_API_BASE", "VAPI_ASSISTANT_ID", "VAPI_SIP_USER", "VAPI_SIP_HOST", "VAPI_SECRET", "WEBHOOK_SECRET",
  "PUBLIC_BASE_URL", "API_KEY", "STT_API_KEY",
];
const MAX_BODY = 8 * 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NESTED = ["instructions", "variables"];

const json = (status, body) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const error = (status, code, message) => json(status, { error: { code, message } });

function sameSecret(given, expected) {
  if (typeof given !== "string" || given.length !== expected.length) return false;
  let diff = 0;
  for (let i = 0; i < given.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}

function asText(value) {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(asText).filter((v) => v !== undefined).join(", ");
  return JSON.stringify(value);
}

function variableValues(context) {
  const out = {};
  for (const [name, value] of Object.entries(context)) {
    if (NESTED.includes(name) || name === "first_message") continue;
    const text = asText(value);
    if (text !== undefined) out[name] = text;
  }
  for (const nested of NESTED) {
    for (const [name, value] of Object.entries(context[nested] || {})) {
      const text = asText(value);
      if (!(name in out) && text !== undefined) out[name] = text;
    }
  }
  return out;
}

async function assistantRequest(request, env) {
  const secret = request.headers.get("x-vapi-secret") ?? request.headers.get("authorization")?.replace(/^Bearer /, "");
  if (!secret) return error(401, "unauthorized", "the VAPI credential is missing");
  if (!sameSecret(secret, env.VAPI_SECRET)) return error(403, "forbidden", "the VAPI credential does not match");
  if (Number(request.headers.get("content-length") ?? 0) > MAX_BODY) return error(413, "payload_too_large", "too large");
  let body;
  try {
    body = JSON.parse(await request.text());
  } catch {
    return error(400, "invalid_json", "the body is not JSON");
  }
  const message = body?.message;
  if (message?.type !== "assistant-request") return json(200, {});
  const id = message.call?.assistantOverrides?.variableValues?.pendingcallid;
  if (typeof id !== "string" || !UUID.test(id)) return json(200, { error: "no pending call id" });
  const answer = await fetch(`${env.SUPABASE_URL}/rest/v1/rpc/call_context`, {
    method: "POST",
    headers: {
      apikey: env.SUPABASE_SERVICE_ROLE_KEY,
      authorization: `Bearer ${env.SUPABASE_SERVICE_ROLE_KEY}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ p_pending_call_id: id, p_vapi_call_id: message.call?.id ?? null }),
  });
  if (!answer.ok) return error(502, "upstream_error", `call_context failed (${answer.status})`);
  const context = await answer.json();
  if (context === null || typeof context !== "object") return json(200, { error: "this call has no context" });
  const overrides = { variableValues: variableValues(context) };
  if (context.first_message) overrides.firstMessage = context.first_message;
  return json(200, { assistantId: env.VAPI_ASSISTANT_ID, assistantOverrides: overrides });
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/health" && request.method === "GET") {
      return json(200, { configured: VARIABLES.every((name) => typeof env[name] === "string" && env[name].trim() !== "") });
    }
    if (pathname === "/vapi/events" && request.method === "POST") return assistantRequest(request, env);
    return error(404, "not_found", `no route for ${pathname}`);
  },
};
