-- 05: the validation helpers the tables' check constraints call (so they come before the tables).
-- Check constraints run their function with the inserting role's rights: the writer needs EXECUTE on them
-- (granted in 90_security.sql).

-- E.164: '+', a non-zero country digit, 7..15 digits in all.
create or replace function outcall_private.is_e164(p_phone text) returns boolean
language sql immutable strict
set search_path = ''
as $$
  select p_phone ~ '^\+[1-9][0-9]{6,14}$'
$$;

-- A valid IANA time-zone name, spelled exactly as in the tz database ('America/New_York', 'UTC',
-- 'Etc/GMT+5'). Postgres is asked to load the zone (a lookup of pg_timezone_names costs ~30 ms per call,
-- too slow for batch inserts); rejected besides what Postgres refuses: abbreviations ('PST': not a zone),
-- other spellings ('america/new_york'), and POSIX rule strings ('XYZ+5'), which Postgres accepts but are not
-- zone names. STABLE, not IMMUTABLE: the answer depends on the installed tz database.
create or replace function outcall_private.is_valid_timezone(p_tz text) returns boolean
language plpgsql stable strict
set search_path = ''
set "TimeZone" = 'UTC'
as $$
begin
  if p_tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' then
    return false;
  end if;
  -- Outside Etc/, the only zone names with digits are these legacy ones; anything else is a POSIX rule.
  if p_tz !~ '/' and p_tz ~ '[0-9]' and p_tz !~ '^(EST5EDT|CST6CDT|MST7MDT|PST8PDT|GMT[+-]?0)$' then
    return false;
  end if;
  -- Local to this call: the function's SET clause restores TimeZone on exit.
  perform pg_catalog.set_config('TimeZone', p_tz, true);
  return pg_catalog.current_setting('TimeZone') = p_tz;
exception
  when others then
    return false;
end
$$;

-- ivr_actions: a JSON array of {"action": "dtmf"|"speech"|"wait", "value": text, "timing_ms": int >= 0}.
--   dtmf:   value non-empty, only [0-9*#w] (w = Twilio's half-second pause)
--   speech: value non-empty text without control characters (U+0001-U+001F, U+007F-U+009F: no place in
--           speech, and most cannot be carried in XML, so in TwiML; outcall-core's replay refuses them too)
--   wait:   value optional (string or null)
--   timing_ms: required integer >= 0 (pause before the action)
-- No other keys. The consistency with classification_type (human: none; ivr_*: at least one) is a
-- separate table check.
create or replace function outcall_private.ivr_actions_valid(p_actions jsonb) returns boolean
language plpgsql immutable
set search_path = ''
as $$
declare
  a jsonb;
  v_action text;
begin
  if p_actions is null or pg_catalog.jsonb_typeof(p_actions) <> 'array' then
    return false;
  end if;
  for a in select e from pg_catalog.jsonb_array_elements(p_actions) as e loop
    if pg_catalog.jsonb_typeof(a) <> 'object' then
      return false;
    end if;
    if exists (select 1 from pg_catalog.jsonb_object_keys(a) as k
                where k not in ('action', 'value', 'timing_ms')) then
      return false;
    end if;
    if pg_catalog.jsonb_typeof(a -> 'action') is distinct from 'string' then
      return false;
    end if;
    v_action := a ->> 'action';
    if v_action not in ('dtmf', 'speech', 'wait') then
      return false;
    end if;
    -- timing_ms: a whole, non-negative number that fits an int
    if pg_catalog.jsonb_typeof(a -> 'timing_ms') is distinct from 'number'
       or (a ->> 'timing_ms')::numeric < 0
       or (a ->> 'timing_ms')::numeric > 2147483647
       or (a ->> 'timing_ms')::numeric <> pg_catalog.trunc((a ->> 'timing_ms')::numeric) then
      return false;
    end if;
    if v_action = 'wait' then
      if coalesce(pg_catalog.jsonb_typeof(a -> 'value'), 'null') not in ('string', 'null') then
        return false;
      end if;
    else
      if pg_catalog.jsonb_typeof(a -> 'value') is distinct from 'string' or (a ->> 'value') = '' then
        return false;
      end if;
      if v_action = 'dtmf' and (a ->> 'value') !~ '^[0-9*#w]+$' then
        return false;
      end if;
      if v_action = 'speech' and (a ->> 'value') ~ '[\u0001-\u001f\u007f-\u009f]' then
        return false;
      end if;
    end if;
  end loop;
  return true;
end
$$;
