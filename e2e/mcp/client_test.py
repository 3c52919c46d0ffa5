"""The MCP server (`POST /mcp`) through the official Python client SDK (`mcp`, pinned in tools/requirements.txt),
against the running stack. Run by e2e/tests/mcp.rs, which passes the stack's settings in the environment.

It checks, in order:
- the client initializes and lists the sixteen tools, each with object input and output schemas and annotations
  (reads are read-only, the cancels destructive, the triggers not read-only);
- estimate-batch-cost answers the estimate trigger-batch-calls then makes, and writes nothing;
- trigger-batch-calls with 2 targets is accepted, and get-batch-status, polled, shows the batch end;
- get-batch-status and get-batch-transcripts answer what the REST API answers, and the rows PostgREST holds;
- a bad phone in target 1 is a tool error (isError) with code validation_error and path targets[1].phone,
  and nothing is written;
- list-batches includes the batch; pause-batch pauses a fresh batch scheduled a year ahead (again: changed false),
  resume-batch resumes it; cancel-batch cancels it, and pausing it then is a tool error batch_cancelled;
- trigger-batch-sms with a template and 2 targets is accepted and every message is delivered;
  get-sms-batch-status and get-sms-batch-messages answer what the REST API answers and the database holds;
  a placeholder a target lacks is a tool error at targets[1].variables.when, nothing written;
  cancel-sms-batch cancels a batch scheduled a day ahead;
- suppress-number lists a phone (created, then created: false again), a bad phone is a tool error at path phone
  with nothing written, list-suppressions answers what GET /api/v1/suppressions answers, unsuppress-number removes it;
- get-provider-health answers what GET /api/v1/providers answers (the circuit breaker, its transitions, the
  providers' refusals per day) and refuses an argument it does not take;
- no key or a wrong key is 401 with WWW-Authenticate: Bearer, and its trigger creates nothing; a foreign Origin
  is 403, an unsupported MCP-Protocol-Version 400, GET 405; JSON-RPC errors (-32601, -32700); a notification 202.
"""

import asyncio
import datetime
import json
import os
import sys
import time

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

WORKER = os.environ["WORKER_URL"].rstrip("/")
MCP_URL = f"{WORKER}/mcp"
API_KEY = os.environ["API_KEY"]
SUPABASE = os.environ["SUPABASE_URL"].rstrip("/")
SERVICE_KEY = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
PHONES = json.loads(os.environ["OUTCALL_MCP_PHONES"])
RUN = os.environ["OUTCALL_MCP_RUN"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}

SMS = json.loads(os.environ["OUTCALL_MCP_SMS"])
DNC_PHONE = os.environ["OUTCALL_MCP_DNC_PHONE"]
TOOLS = {"trigger-batch-calls", "get-batch-status", "get-batch-transcripts", "list-batches", "cancel-batch",
         "pause-batch", "resume-batch", "trigger-batch-sms", "get-sms-batch-status", "get-sms-batch-messages", "cancel-sms-batch",
         "estimate-batch-cost", "suppress-number", "list-suppressions", "unsuppress-number",
         "get-provider-health"}
ENDED = {"completed", "cancelled"}


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}")


def rest(path):
    response = httpx.get(f"{WORKER}/api/v1{path}", headers=AUTH, timeout=30)
    response.raise_for_status()
    return response.json()


def postgrest(path):
    headers = {"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"}
    response = httpx.get(f"{SUPABASE}/rest/v1/{path}", headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()


def batches_named(name):
    return postgrest(f"batches?select=id&name=eq.{name}")


async def call(session, name, arguments):
    return await session.call_tool(name, arguments)


def structured(result, what):
    detail = f" ({result.content[0].text})" if result.isError and result.content else ""
    check(not result.isError, f"{what} is no tool error{detail}")
    check(json.loads(result.content[0].text) == result.structuredContent, f"{what}: text and structuredContent agree")
    return result.structuredContent


async def tools_are_listed(session):
    listed = (await session.list_tools()).tools
    by_name = {t.name: t for t in listed}
    check(set(by_name) == TOOLS, f"tools/list names the sixteen tools (got {sorted(by_name)})")
    for tool in listed:
        check(tool.inputSchema.get("type") == "object", f"{tool.name}: inputSchema is an object schema")
        check((tool.outputSchema or {}).get("type") == "object", f"{tool.name}: outputSchema is an object schema")
        check(tool.annotations is not None, f"{tool.name}: has annotations")
    for name in ["get-batch-status", "get-batch-transcripts", "list-batches", "get-sms-batch-status",
                 "get-sms-batch-messages", "estimate-batch-cost", "list-suppressions",
                 "get-provider-health"]:
        hints = by_name[name].annotations
        check(hints.readOnlyHint is True and hints.destructiveHint is False, f"{name} is read-only")
    check(by_name["cancel-batch"].annotations.destructiveHint is True, "cancel-batch is destructive")
    check(by_name["cancel-sms-batch"].annotations.destructiveHint is True, "cancel-sms-batch is destructive")
    check("SmsTarget" in by_name["trigger-batch-sms"].inputSchema.get("$defs", {}),
          "trigger-batch-sms' targets are the API's SmsTarget schema")
    trigger = by_name["trigger-batch-calls"]
    check(trigger.annotations.readOnlyHint is False, "trigger-batch-calls is not read-only")
    check("idempotencyKey" in trigger.inputSchema["properties"], "trigger-batch-calls takes an idempotencyKey")
    check("Target" in trigger.inputSchema.get("$defs", {}), "trigger-batch-calls' targets are the API's Target schema")
    check(by_name["get-batch-status"].inputSchema["required"] == ["batchId"], "get-batch-status needs a batchId")


async def a_batch_runs_to_its_end(session):
    name = f"{RUN}-calls"
    targets = [{"phone": phone, "name": f"MCP Person {i}", "clinic_timezone": "America/Chicago"}
               for i, phone in enumerate(PHONES)]
    arguments = {"name": name, "targets": targets, "idempotencyKey": f"{RUN}-key"}
    estimate = structured(await call(session, "estimate-batch-cost", {"name": name, "targets": targets}),
                          "estimate-batch-cost")
    check(estimate["costEstimate"]["calls"] == 2 and estimate["costEstimate"]["usd"] > 0, "an estimate of 2 calls")
    check(batches_named(name) == [], "estimate-batch-cost writes nothing")
    accepted = structured(await call(session, "trigger-batch-calls", arguments), "trigger-batch-calls")
    check(accepted["accepted"] == 2 and accepted["rejected"] == [], "both targets accepted")
    check(accepted["costEstimate"] == estimate["costEstimate"], "trigger-batch-calls makes the same estimate")
    batch_id = accepted["batchId"]
    check(accepted["statusUrl"].endswith(f"/api/v1/batches/{batch_id}"), "the answer has the REST status URL")
    replay = structured(await call(session, "trigger-batch-calls", arguments), "the same key again")
    check(replay["batchId"] == batch_id, "the same idempotencyKey replays the first batch")
    check(len(batches_named(name)) == 1, "and creates no second batch")
    conflict = await call(session, "trigger-batch-calls", {**arguments, "name": f"{name}-other"})
    check(conflict.isError and json.loads(conflict.content[0].text)["error"]["code"] == "idempotency_conflict",
          "the same key with other arguments is the tool error idempotency_conflict")

    deadline = time.monotonic() + 150
    while True:
        status = structured(await call(session, "get-batch-status", {"batchId": batch_id}), "get-batch-status")
        if status["status"] in ENDED or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    check(status["status"] == "completed", f"the batch reached its end (status {status['status']})")

    rest_status = rest(f"/batches/{batch_id}")
    status = structured(await call(session, "get-batch-status", {"batchId": batch_id}), "get-batch-status")
    check(status == rest_status, "get-batch-status answers what GET /api/v1/batches/:id answers")
    rows = postgrest(f"pending_calls?select=id,call_status,transcript&batch_id=eq.{batch_id}")
    check(sorted(r["pendingCallId"] for r in status["results"]) == sorted(r["id"] for r in rows),
          "its results are the batch's rows in the database")
    by_id = {r["id"]: r for r in rows}
    check(all(r["status"] == by_id[r["pendingCallId"]]["call_status"] for r in status["results"]),
          "each result's status is its row's call_status")

    transcripts = structured(
        await call(session, "get-batch-transcripts", {"batchId": batch_id, "limit": 1}), "get-batch-transcripts")
    check(transcripts == rest(f"/batches/{batch_id}/transcripts?limit=1"),
          "get-batch-transcripts (limit 1) answers what the REST route answers")
    with_transcript = [r for r in rows if r["transcript"]]
    check(transcripts["page"]["total"] == len(with_transcript) and len(transcripts["transcripts"]) == min(1, len(with_transcript)),
          f"its page counts the {len(with_transcript)} rows with a transcript, one per page")
    page2 = structured(await call(session, "get-batch-transcripts", {"batchId": batch_id, "limit": 1, "offset": 1}),
                       "get-batch-transcripts page 2")
    all_texts = {r["id"]: r["transcript"] for r in with_transcript}
    for item in transcripts["transcripts"] + page2["transcripts"]:
        check(item["transcript"] == all_texts.get(item["pendingCallId"]), "a transcript is its row's in the database")
    check(len(with_transcript) == 2, "both calls have a transcript")
    return batch_id


async def a_bad_input_is_a_tool_error(session):
    name = f"{RUN}-bad"
    targets = [{"phone": PHONES[0], "name": "Fine"}, {"phone": "555-0100", "name": "No Country Code"}]
    result = await call(session, "trigger-batch-calls", {"name": name, "targets": targets})
    check(result.isError is True, "an invalid phone is a tool error")
    error = json.loads(result.content[0].text)["error"]
    check(error["code"] == "validation_error", "with the REST API's code validation_error")
    check([i["path"] for i in error["items"]] == ["targets[1].phone"], "naming the item targets[1].phone")
    check(batches_named(name) == [], "and nothing is written")
    result = await call(session, "get-batch-status", {"batchId": "not-a-uuid"})
    check(result.isError and json.loads(result.content[0].text)["error"]["code"] == "invalid_id",
          "a bad batch id is the tool error invalid_id")


async def list_and_cancel(session, ended_batch):
    listed = structured(await call(session, "list-batches", {"limit": 100}), "list-batches")
    check(any(b["batchId"] == ended_batch for b in listed["batches"]), "list-batches includes the batch")
    next_year = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)).isoformat()
    arguments = {"name": f"{RUN}-cancel", "schedule": {"notBefore": next_year},
                 "targets": [{"phone": PHONES[0], "name": "Later Person"}]}
    fresh = structured(await call(session, "trigger-batch-calls", arguments), "a batch a year ahead")["batchId"]
    for tool, paused, changed in [("pause-batch", True, True), ("pause-batch", True, False), ("resume-batch", False, True)]:
        answer = structured(await call(session, tool, {"batchId": fresh}), tool)
        check(answer["paused"] is paused and answer["changed"] is changed, f"{tool}: paused {paused}, changed {changed}")
    rows = postgrest(f"operator_actions?select=action,actor&target_ids=cs.{{{fresh}}}")
    check(sorted((r["action"], r["actor"]) for r in rows) == [("pause", "api_key"), ("pause", "api_key"),
                                                               ("resume", "api_key")], "each call audited as the API key")
    cancelled = structured(await call(session, "cancel-batch", {"batchId": fresh}), "cancel-batch")
    check(cancelled["status"] == "cancelled" and cancelled["cancelled"] == 1, "cancel-batch cancels it")
    rows = postgrest(f"pending_calls?select=call_status&batch_id=eq.{fresh}")
    check([r["call_status"] for r in rows] == ["cancelled"], "its row is cancelled in the database")
    refused = await session.call_tool("pause-batch", {"batchId": fresh})
    check(refused.isError and "batch_cancelled" in refused.content[0].text, "pause-batch of a cancelled batch: a tool error")


async def provider_health(session):
    health = structured(await call(session, "get-provider-health", {}), "get-provider-health")
    check(health["breaker"]["state"] in {"closed", "open", "half_open"}, f"the breaker's state ({health['breaker']['state']})")
    rest_health = rest("/providers")
    # The breaker may move between the two reads only if a provider fails meanwhile; nothing fails here.
    check(health == rest_health, "get-provider-health answers what GET /api/v1/providers answers")
    refused = await call(session, "get-provider-health", {"days": 3})
    check(refused.isError and json.loads(refused.content[0].text)["error"]["code"] == "invalid_parameter",
          "an argument it does not take is the tool error invalid_parameter")


async def an_sms_batch_is_delivered(session):
    name = f"{RUN}-sms"
    template = "Hi {{name}}, your exam is at {{when}}."
    targets = [{"phone": phone, "name": f"Texted {i}", "variables": {"when": f"{9 + i}:00"}}
               for i, phone in enumerate(SMS["phones"])]
    bad = await call(session, "trigger-batch-sms", {"name": f"{name}-bad", "from": SMS["sender"],
                                                    "bodyTemplate": template,
                                                    "targets": [targets[0], {"phone": SMS["phones"][1], "name": "No When"}]})
    check(bad.isError is True, "a placeholder a target lacks is a tool error")
    error = json.loads(bad.content[0].text)["error"]
    check([i["path"] for i in error["items"]] == ["targets[1].variables.when"], "naming targets[1].variables.when")
    check(postgrest(f"sms_batches?select=id&name=eq.{name}-bad") == [], "and nothing is written")

    arguments = {"name": name, "from": SMS["sender"], "bodyTemplate": template, "targets": targets,
                 "idempotencyKey": f"{RUN}-sms-key"}
    accepted = structured(await call(session, "trigger-batch-sms", arguments), "trigger-batch-sms")
    check(accepted["accepted"] == 2 and accepted["optedOut"] == [], "both messages accepted")
    batch_id = accepted["smsBatchId"]
    check(accepted["statusUrl"].endswith(f"/api/v1/sms-batches/{batch_id}"), "the answer has the REST status URL")
    deadline = time.monotonic() + 120
    while True:
        status = structured(await call(session, "get-sms-batch-status", {"smsBatchId": batch_id}), "get-sms-batch-status")
        if status["counts"]["delivered"] == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    check(status["counts"]["delivered"] == 2 and status["status"] == "completed", f"both delivered ({status['counts']})")
    check(status == rest(f"/sms-batches/{batch_id}"), "get-sms-batch-status answers what GET /api/v1/sms-batches/:id answers")
    messages = structured(await call(session, "get-sms-batch-messages", {"smsBatchId": batch_id}), "get-sms-batch-messages")
    check(messages == rest(f"/sms-batches/{batch_id}/messages"), "get-sms-batch-messages answers what the REST route answers")
    rows = postgrest(f"sms_messages?select=id,body,status&batch_id=eq.{batch_id}&order=position")
    check([(m["messageId"], m["body"], m["status"]) for m in messages["messages"]]
          == [(r["id"], r["body"], r["status"]) for r in rows], "its messages are the database's")
    check(rows[1]["body"] == "Hi Texted 1, your exam is at 10:00.", "each body filled from its target's variables")

    tomorrow = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).isoformat()
    later = structured(await call(session, "trigger-batch-sms", {"from": SMS["sender"], "schedule": {"notBefore": tomorrow},
                                                                 "targets": [{"phone": SMS["phones"][0], "body": "Later"}]}),
                       "an SMS batch a day ahead")["smsBatchId"]
    cancelled = structured(await call(session, "cancel-sms-batch", {"smsBatchId": later}), "cancel-sms-batch")
    check(cancelled["status"] == "cancelled" and cancelled["cancelled"] == 1, "cancel-sms-batch cancels it")


def keys_are_required():
    name = f"{RUN}-unauthorized"
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "trigger-batch-calls",
                          "arguments": {"name": name, "targets": [{"phone": PHONES[0], "name": "Nobody"}]}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for what, extra in [("no key", {}), ("a wrong key", {"Authorization": "Bearer not-the-key"})]:
        response = httpx.post(MCP_URL, json=message, headers={**headers, **extra}, timeout=30)
        check(response.status_code == 401, f"{what}: 401 (got {response.status_code})")
        check(response.headers.get("WWW-Authenticate", "").startswith("Bearer"), f"{what}: WWW-Authenticate: Bearer")
    check(batches_named(name) == [], "a refused call creates nothing")
    response = httpx.post(MCP_URL, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={**headers, **AUTH, "Origin": "https://evil.example"}, timeout=30)
    check(response.status_code == 403, "a foreign Origin is 403")
    response = httpx.post(MCP_URL, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={**headers, **AUTH, "MCP-Protocol-Version": "2099-01-01"}, timeout=30)
    check(response.status_code == 400, "an unsupported MCP-Protocol-Version is 400")
    check(httpx.get(MCP_URL, headers=AUTH, timeout=30).status_code == 405, "GET /mcp is 405")
    rpc_headers = {**headers, **AUTH}
    unknown = httpx.post(MCP_URL, json={"jsonrpc": "2.0", "id": 7, "method": "resources/list"}, headers=rpc_headers)
    check(unknown.json()["error"]["code"] == -32601 and unknown.json()["id"] == 7, "an unknown method is -32601")
    garbled = httpx.post(MCP_URL, content=b"{not json", headers=rpc_headers)
    check(garbled.json()["error"]["code"] == -32700, "a body that is not JSON is -32700")
    notified = httpx.post(MCP_URL, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=rpc_headers)
    check(notified.status_code == 202 and notified.content == b"", "a notification is 202 with no body")


async def the_do_not_call_list(session):
    def listed():
        return [e["phone"] for e in rest("/suppressions?limit=1000")["suppressions"]]
    arguments = {"phone": DNC_PHONE, "reason": "asked over MCP"}
    added = structured(await call(session, "suppress-number", arguments), "suppress-number")
    check(added["created"] is True and added["suppression"]["source"] == "manual", "suppress-number lists the phone")
    again = structured(await call(session, "suppress-number", arguments), "suppress-number again")
    check(again["created"] is False, "listing it again is harmless (created: false)")
    before = len(postgrest("suppression_list?select=phone"))
    bad = await call(session, "suppress-number", {"phone": "555-0100"})
    error = json.loads(bad.content[0].text)["error"] if bad.isError else {}
    check(error.get("code") == "validation_error" and error["items"][0]["path"] == "phone",
          "a bad phone is the tool error validation_error at path phone")
    check(len(postgrest("suppression_list?select=phone")) == before, "and nothing is written")
    page = structured(await call(session, "list-suppressions", {"limit": 1000}), "list-suppressions")
    check(page == rest("/suppressions?limit=1000"), "list-suppressions answers what GET /api/v1/suppressions answers")
    check(DNC_PHONE in [e["phone"] for e in page["suppressions"]], "the phone is on the list")
    removed = structured(await call(session, "unsuppress-number", {"phone": DNC_PHONE}), "unsuppress-number")
    check(removed["removed"] is True and DNC_PHONE not in listed(), "unsuppress-number takes it off the list")


async def with_the_sdk():
    async with streamablehttp_client(MCP_URL, headers=AUTH, timeout=30) as (read, write, _session_id):
        async with ClientSession(read, write) as session:
            initialized = await session.initialize()
            check(initialized.protocolVersion == "2025-11-25",
                  f"initialize agrees on a revision ({initialized.protocolVersion})")
            check(initialized.capabilities.tools is not None, "the server advertises tools")
            await session.send_ping()
            await tools_are_listed(session)
            await a_bad_input_is_a_tool_error(session)
            batch_id = await a_batch_runs_to_its_end(session)
            await list_and_cancel(session, batch_id)
            await an_sms_batch_is_delivered(session)
            await the_do_not_call_list(session)
            await provider_health(session)


def main():
    keys_are_required()
    asyncio.run(with_the_sdk())
    print("all MCP checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
