// The Worker's routes the dashboard calls (same origin). Every call but the configuration carries the user's
// access token in the Authorization header, never a cookie: a page of another site cannot make the browser send
// it, so the actions are CSRF-safe by construction.

// The calls' actions (POST /api/v1/operator/calls/{action}, action = operator_call_action's p_action) and their
// buttons; those that cannot be undone are confirmed first.
export const CALL_ACTIONS = [
  { action: 'retry_now', label: 'Retry now' },
  { action: 'cancel', label: 'Cancel', confirm: true },
  { action: 'reset', label: 'Reset to pending', confirm: true },
  { action: 'archive', label: 'Archive' },
  { action: 'unarchive', label: 'Unarchive' },
];

// The route's own cap on ids per request.
export const MAX_IDS_PER_ACTION = 500;

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return { error: { code: 'not_json', message: `${response.status}: ${text.slice(0, 200)}` } };
  }
}

// GET /api/v1/dashboard/config -> {supabaseUrl, supabaseAnonKey} (no auth: the anon key is public).
export async function fetchConfig() {
  const response = await fetch('/api/v1/dashboard/config', { headers: { Accept: 'application/json' } });
  const body = await readJson(response);
  if (!response.ok || !body?.supabaseUrl || !body?.supabaseAnonKey) {
    throw new Error(body?.error?.message ?? `The dashboard's configuration is unavailable (HTTP ${response.status})`);
  }
  return body;
}

// POST (or GET) a Worker route with the user's token; answers {status, body} whatever the status.
export async function workerRequest(token, method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Accept: 'application/json',
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await readJson(response) };
}

// GET /api/v1/operator/me -> {userId, email, role: 'viewer' | 'operator' | null}.
export async function fetchRole(token) {
  const { status, body } = await workerRequest(token, 'GET', '/api/v1/operator/me');
  if (status === 200) return { role: body?.role ?? null, email: body?.email ?? '' };
  if (status === 403) return { role: null, email: body?.email ?? '' };
  const error = new Error(body?.error?.message ?? `Could not find your role (HTTP ${status})`);
  error.status = status;
  throw error;
}

// One calls action on up to MAX_IDS_PER_ACTION ids per request; answers the per-id results of all requests.
export async function callAction(token, spec, ids) {
  const results = [];
  for (let i = 0; i < ids.length; i += MAX_IDS_PER_ACTION) {
    const chunk = ids.slice(i, i + MAX_IDS_PER_ACTION);
    const path = `/api/v1/operator/calls/${spec.action}`;
    const { status, body } = await workerRequest(token, 'POST', path, { ids: chunk });
    if (status !== 200) throw new Error(body?.error?.message ?? `${spec.label} refused (HTTP ${status})`);
    results.push(...(body?.results ?? []));
  }
  return results;
}

export async function batchAction(token, batchId, segment) {
  const { status, body } = await workerRequest(token, 'POST', `/api/v1/operator/batches/${batchId}/${segment}`);
  if (status !== 200) throw new Error(body?.error?.message ?? `Refused (HTTP ${status})`);
  return body;
}

// POST /api/v1/operator/suppressions/{add|remove} with {phone, reason?, source?} (add) or {phone} (remove).
export async function suppressionAction(token, action, body) {
  const { status, body: answer } = await workerRequest(token, 'POST', `/api/v1/operator/suppressions/${action}`, body);
  if (status !== 200) throw new Error(answer?.error?.message ?? `Refused (HTTP ${status})`);
  return answer;
}

export async function classificationAction(token, classificationId, segment, correction) {
  const path = `/api/v1/operator/classifications/${classificationId}/${segment}`;
  const { status, body } = await workerRequest(token, 'POST', path, correction);
  if (status !== 200) throw new Error(body?.error?.message ?? `Refused (HTTP ${status})`);
  return body;
}
