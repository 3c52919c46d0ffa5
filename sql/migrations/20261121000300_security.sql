-- Privileges and row-level security.
--   anon:          nothing at all (no table privilege, no policy, no function).
--   authenticated: read-only (dashboards), every row: SELECT privilege + a `using (true)` policy.
--   service_role:  everything (bypasses RLS); the only role that may execute the state-machine functions.
-- Supabase grants everything in `public` to anon/authenticated by default, so each grant here is explicit.

-- Tables -------------------------------------------------------------------------------------------
alter table public.pending_calls enable row level security;
alter table public.call_sessions enable row level security;
alter table public.call_classifications enable row level security;

revoke all on table public.pending_calls, public.call_sessions, public.call_classifications
  from public, anon, authenticated;
grant select on table public.pending_calls, public.call_sessions, public.call_classifications
  to authenticated;
grant all on table public.pending_calls, public.call_sessions, public.call_classifications
  to service_role;

drop policy if exists "authenticated can read" on public.pending_calls;
create policy "authenticated can read" on public.pending_calls
  for select to authenticated using (true);
drop policy if exists "authenticated can read" on public.call_sessions;
create policy "authenticated can read" on public.call_sessions
  for select to authenticated using (true);
drop policy if exists "authenticated can read" on public.call_classifications;
create policy "authenticated can read" on public.call_classifications
  for select to authenticated using (true);

-- The state-machine functions (RPC) ---------------------------------------------------------------
revoke all on function
  public.claim_pending_call(uuid),
  public.record_dial_result(uuid, text, text, text),
  public.apply_twilio_status(text, text, int, text, int, uuid),
  public.call_context(uuid),
  public.apply_vapi_status(uuid, text, text),
  public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric)
  from public, anon, authenticated;
grant execute on function
  public.claim_pending_call(uuid),
  public.record_dial_result(uuid, text, text, text),
  public.apply_twilio_status(text, text, int, text, int, uuid),
  public.call_context(uuid),
  public.apply_vapi_status(uuid, text, text),
  public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric)
  to service_role;

-- outcall_private: not exposed by the API, closed to the API roles ---------------------------------
revoke all on schema outcall_private from public, anon, authenticated;
revoke all on all functions in schema outcall_private from public, anon, authenticated;
revoke all on all tables in schema outcall_private from public, anon, authenticated;
-- Check constraints run their function with the inserting role's rights: the writer needs EXECUTE
-- (not schema USAGE) on the validation helpers. Trigger functions need no grant.
grant execute on function
  outcall_private.is_e164(text),
  outcall_private.is_valid_timezone(text),
  outcall_private.ivr_actions_valid(jsonb)
  to service_role;
-- The state-machine functions run with the caller's rights and share private helpers.
grant usage on schema outcall_private to service_role;
grant execute on function
  outcall_private.lock_vapi_session(uuid, text),
  outcall_private.advance_pending_call(public.pending_calls, int, text, text)
  to service_role;
-- (Functions are executable by PUBLIC by default and that cannot be revoked per schema: a migration that
-- adds a function to outcall_private revokes it explicitly.)
