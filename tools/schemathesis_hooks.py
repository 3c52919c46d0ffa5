"""Hooks for `./dev test api` (schemathesis against the running Worker).

A schema-valid request can still be refused (400 `validation_error`) for what only the database knows, or what
spans fields, as the OpenAPI document says of `createBatch`: a `clinic_timezone` the tz database lacks, only
`pendingCallIds` and none of them known, a window whose start is not before its end. (The deployment's calling
window is open all week on the local stack, so no window is outside it.) A schema cannot say which names and ids
exist, nor compare two fields, so for schema-valid (positive) cases only, these hooks put in real ones: every
`clinic_timezone` becomes one the database has, a request whose only rows would be `pendingCallIds` gets one known
id among them, a window's start and end are put in order, and a batch with an expiry (`expiresAt`, a target's
`expires_at`: it must be ahead by the database's clock and after `notBefore`) expires at EXPIRES, after a
`notBefore` of FAR_AHEAD (its rows are written, never dialled). Everything else, and every negative case, goes as
generated.

One more, for the local stack's sake: a schema-valid batch of more than PARK_OVER rows (the coverage phase sends
one of `maxItems`, 10,000 targets) is scheduled far ahead, so that its rows are written but not dialled.

SMS batches (`createSmsBatch`), schema-valid cases only: what a template needs spans fields (each placeholder must
be given by every target without a body of its own, a target without a body needs a template, the same text to the
same number twice is a duplicate), so the template becomes plain text and each target a number of its own; and
every such batch is scheduled far ahead (sending is tested end to end, e2e/tests/sms.rs).
"""

import json
import os
import urllib.request

import schemathesis

KNOWN_ZONE = "America/Chicago"
PARK_OVER = 50
FAR_AHEAD = "2099-01-01T00:00:00Z"
EXPIRES = "2100-01-01T00:00:00Z"
_known_id = None


def _api(method, path, body=None):
    request = urllib.request.Request(
        os.environ["WORKER_URL"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + os.environ["API_KEY"], "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def known_pending_call_id():
    """A pending call that exists: the one row of a batch made for it, parked a year ahead (never dialled)."""
    global _known_id
    if _known_id is None:
        accepted = _api("POST", "/api/v1/batches", {
            "name": "schemathesis: a known pending call",
            "targets": [{"phone": "+15550009999", "name": "Known Row"}],
            "schedule": {"notBefore": FAR_AHEAD},
        })
        batch = _api("GET", "/api/v1/batches/" + accepted["batchId"])
        _known_id = batch["results"][0]["pendingCallId"]
    return _known_id


def plain_sms_batch(body):
    """A schema-valid SMS batch made valid across its fields too, and parked."""
    body["bodyTemplate"] = "A message from schemathesis"
    for index, target in enumerate(body.get("targets") or []):
        if isinstance(target, dict):
            target["phone"] = f"+1555061{index:04d}"
    schedule = body.get("schedule")
    body["schedule"] = {**(schedule if isinstance(schedule, dict) else {}), "notBefore": FAR_AHEAD}


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and case.operation.label == "POST /api/v1/sms-batches" and isinstance(case.body, dict):
        plain_sms_batch(case.body)
        return case
    # The estimate takes create's body and checks it the same.
    batch_routes = ("POST /api/v1/batches", "POST /api/v1/batches/estimate")
    if not positive or case.operation.label not in batch_routes or not isinstance(case.body, dict):
        return case
    body = case.body
    for target in body.get("targets") or []:
        if isinstance(target, dict) and isinstance(target.get("clinic_timezone"), str):
            target["clinic_timezone"] = KNOWN_ZONE
    ids = body.get("pendingCallIds")
    if not body.get("targets") and isinstance(ids, list) and ids:
        ids[0] = known_pending_call_id()
    schedule = body.get("schedule")
    window = schedule.get("window") if isinstance(schedule, dict) else None
    if isinstance(window, dict) and isinstance(window.get("start"), str) and isinstance(window.get("end"), str):
        start, end = sorted([window["start"], window["end"]])
        window["start"], window["end"] = (start, end) if start < end else ("00:00", "23:59")
    expiring = [t for t in body.get("targets") or [] if isinstance(t, dict) and isinstance(t.get("expires_at"), str)]
    if isinstance(body.get("expiresAt"), str) or expiring:
        for holder, key in [(body, "expiresAt")] + [(t, "expires_at") for t in expiring]:
            if isinstance(holder.get(key), str):
                holder[key] = EXPIRES
        schedule = body.get("schedule")
        body["schedule"] = {**(schedule if isinstance(schedule, dict) else {}), "notBefore": FAR_AHEAD}
    if len(body.get("targets") or []) + len(ids or []) > PARK_OVER:
        schedule = body.get("schedule")
        body["schedule"] = {**(schedule if isinstance(schedule, dict) else {}), "notBefore": FAR_AHEAD}
    return case
