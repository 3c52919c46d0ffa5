-- The catalogue of a database as text, one item per line (function and view bodies span several), in a fixed
-- order: what sql/agree.sh compares between a database built from the migrations and one built from the
-- declared schema. Run with `psql -X -At -f sql/catalog.sql`. Reads only; its helpers are pg_temp functions.
--
-- Covered, in every schema but the system ones (the sandbox's objects are listed too; they are the same on both
-- sides): schemas, extensions, relations (kind, persistence, replica identity, RLS, options), columns (position,
-- type, nullability, default, identity, generated, collation), constraints, indexes, triggers, views, policies,
-- functions (pg_get_functiondef), types (enums, domains, ranges), sequences, owners, ACLs (relacl, attacl,
-- proacl, nspacl, typacl; in a canonical order, a null ACL written as its default), default privileges,
-- publications and their tables, event triggers, comments, and the rows of every table (seed data).
-- Objects that belong to an extension (pgcrypto's functions, ...) are left out: the extension's line stands for
-- them. Not covered: roles and role memberships (cluster-wide, shared by both databases).

\set ON_ERROR_STOP 1
set client_min_messages = warning;
set search_path = pg_catalog;

-- An ACL in canonical form: its items sorted; a null ACL (the default) written out as the default.
create function pg_temp.acl(p_acl aclitem[], p_kind text, p_owner oid) returns text
language sql stable as $$
  select coalesce(string_agg(x, ',' order by x), '(none)')
    from (select case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end
                 || '=' || a.privilege_type || case when a.is_grantable then '*' else '' end
                 || '/' || a.grantor::regrole::text as x
            from aclexplode(coalesce(p_acl, acldefault(p_kind::"char", p_owner))) as a) as items
$$;

-- Column ACLs have no default: null means none.
create function pg_temp.column_acl(p_acl aclitem[]) returns text
language sql stable as $$
  select case when p_acl is null then '(none)' else pg_temp.acl(p_acl, 'c', 0) end
$$;

create function pg_temp.user_schema(p_nsp oid) returns boolean
language sql stable as $$
  select n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
    from pg_namespace as n where n.oid = p_nsp
$$;

-- Members of an extension (their extension is listed instead).
create function pg_temp.in_extension(p_class regclass, p_oid oid) returns boolean
language sql stable as $$
  select exists (select 1 from pg_depend as d
                  where d.classid = p_class and d.objid = p_oid and d.deptype = 'e')
$$;

create function pg_temp.comment_of(p_oid oid, p_class regclass, p_sub int default 0) returns text
language sql stable as $$
  select coalesce(quote_literal(description), '(none)')
    from (select obj_description(p_oid, p_class::text) as description where p_sub = 0
          union all
          select col_description(p_oid, p_sub) where p_sub <> 0) as d
$$;

create temporary view catalogue (section, key, item) as
-- Schemas
select 1, n.nspname::text,
       format('schema %I owner=%s acl=%s comment=%s', n.nspname, n.nspowner::regrole,
              pg_temp.acl(n.nspacl, 'n', n.nspowner), pg_temp.comment_of(n.oid, 'pg_namespace'))
  from pg_namespace as n
 where pg_temp.user_schema(n.oid)
union all
-- Extensions
select 2, e.extname::text,
       format('extension %I schema=%I version=%s', e.extname, e.extnamespace::regnamespace, e.extversion)
  from pg_extension as e
union all
-- Relations: tables, views, materialized views, sequences, composite types, foreign and partitioned tables
select 3, c.oid::regclass::text,
       format('relation %s kind=%s persistence=%s replica_identity=%s rls=%s force_rls=%s options=%s owner=%s acl=%s comment=%s',
              c.oid::regclass, c.relkind, c.relpersistence, c.relreplident, c.relrowsecurity, c.relforcerowsecurity,
              coalesce(c.reloptions::text, '(none)'), c.relowner::regrole,
              pg_temp.acl(c.relacl, case when c.relkind = 'S' then 's' else 'r' end, c.relowner),
              pg_temp.comment_of(c.oid, 'pg_class'))
  from pg_class as c
 where c.relkind in ('r', 'p', 'v', 'm', 'S', 'c', 'f')
   and pg_temp.user_schema(c.relnamespace) and not pg_temp.in_extension('pg_class', c.oid)
union all
-- Columns, by their position among the live ones (a dropped column leaves a hole in attnum)
select 4, format('%s #%s', c.oid::regclass, lpad(row_number() over (partition by c.oid order by a.attnum)::text, 4, '0')),
       format('column %s #%s %I %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%s',
              c.oid::regclass, row_number() over (partition by c.oid order by a.attnum), a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull,
              coalesce(pg_get_expr(ad.adbin, ad.adrelid), '(none)'), nullif(a.attidentity, '') is not null,
              nullif(a.attgenerated, '') is not null,
              case when a.attcollation <> 0 and a.attcollation <> t.typcollation
                   then a.attcollation::regcollation::text else '(type''s)' end,
              pg_temp.column_acl(a.attacl), pg_temp.comment_of(c.oid, 'pg_class', a.attnum))
  from pg_class as c
  join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_type as t on t.oid = a.atttypid
  left join pg_attrdef as ad on ad.adrelid = c.oid and ad.adnum = a.attnum
 where c.relkind in ('r', 'p', 'v', 'm', 'c', 'f')
   and pg_temp.user_schema(c.relnamespace) and not pg_temp.in_extension('pg_class', c.oid)
union all
-- Constraints of tables and of domains
select 5, format('%s %s', coalesce(co.conrelid::regclass::text, co.contypid::regtype::text), co.conname),
       format('constraint %s %I: %s deferrable=%s deferred=%s validated=%s comment=%s',
              coalesce(co.conrelid::regclass::text, 'domain ' || co.contypid::regtype::text), co.conname,
              pg_get_constraintdef(co.oid), co.condeferrable, co.condeferred, co.convalidated,
              pg_temp.comment_of(co.oid, 'pg_constraint'))
  from pg_constraint as co
 where pg_temp.user_schema(co.connamespace)
   and not pg_temp.in_extension('pg_class', co.conrelid) and not pg_temp.in_extension('pg_type', co.contypid)
union all
-- Indexes
select 6, i.indexrelid::regclass::text,
       format('index %s: %s clustered=%s replica_identity=%s comment=%s', i.indexrelid::regclass,
              pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisreplident,
              pg_temp.comment_of(i.indexrelid, 'pg_class'))
  from pg_index as i
  join pg_class as c on c.oid = i.indexrelid
 where pg_temp.user_schema(c.relnamespace) and not pg_temp.in_extension('pg_class', i.indrelid)
union all
-- Triggers (not the internal ones of foreign keys)
select 7, format('%s %s', tg.tgrelid::regclass, tg.tgname),
       format('trigger %s %I: %s enabled=%s comment=%s', tg.tgrelid::regclass, tg.tgname,
              pg_get_triggerdef(tg.oid), tg.tgenabled, pg_temp.comment_of(tg.oid, 'pg_trigger'))
  from pg_trigger as tg
  join pg_class as c on c.oid = tg.tgrelid
 where not tg.tgisinternal and pg_temp.user_schema(c.relnamespace)
union all
-- Views and materialized views: their query
select 8, c.oid::regclass::text,
       format('view %s:%s', c.oid::regclass, pg_get_viewdef(c.oid))
  from pg_class as c
 where c.relkind in ('v', 'm')
   and pg_temp.user_schema(c.relnamespace) and not pg_temp.in_extension('pg_class', c.oid)
union all
-- Row-level security policies
select 9, format('%s %s', p.polrelid::regclass, p.polname),
       format('policy %s %I: cmd=%s permissive=%s roles=%s using=%s with_check=%s comment=%s',
              p.polrelid::regclass, p.polname, p.polcmd, p.polpermissive,
              (select string_agg(case when r = 0 then 'PUBLIC' else r::regrole::text end, ',' order by 1)
                 from unnest(p.polroles) as r),
              coalesce(pg_get_expr(p.polqual, p.polrelid), '(none)'),
              coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '(none)'),
              pg_temp.comment_of(p.oid, 'pg_policy'))
  from pg_policy as p
  join pg_class as c on c.oid = p.polrelid
 where pg_temp.user_schema(c.relnamespace)
union all
-- Functions and procedures: owner, ACL, comment, then the whole definition
select 10, format('%s.%s(%s)', pr.pronamespace::regnamespace, pr.proname, pg_get_function_identity_arguments(pr.oid)),
       format('function %s.%I(%s) kind=%s owner=%s acl=%s comment=%s%s%s',
              pr.pronamespace::regnamespace, pr.proname, pg_get_function_identity_arguments(pr.oid), pr.prokind,
              pr.proowner::regrole, pg_temp.acl(pr.proacl, 'f', pr.proowner),
              pg_temp.comment_of(pr.oid, 'pg_proc'), E'\n',
              case when pr.prokind = 'a' then '(aggregate)' else pg_get_functiondef(pr.oid) end)
  from pg_proc as pr
 where pg_temp.user_schema(pr.pronamespace) and not pg_temp.in_extension('pg_proc', pr.oid)
union all
-- Types of their own (enums, domains, ranges; a table's row type is its relation)
select 11, t.oid::regtype::text,
       format('type %s kind=%s base=%s notnull=%s default=%s labels=%s owner=%s acl=%s comment=%s',
              t.oid::regtype, t.typtype,
              case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) else '(none)' end,
              t.typnotnull, coalesce(t.typdefault, '(none)'),
              coalesce((select string_agg(quote_literal(e.enumlabel), ',' order by e.enumsortorder)
                          from pg_enum as e where e.enumtypid = t.oid), '(none)'),
              t.typowner::regrole, pg_temp.acl(t.typacl, 'T', t.typowner), pg_temp.comment_of(t.oid, 'pg_type'))
  from pg_type as t
 where t.typtype in ('e', 'd', 'r', 'm')
   and pg_temp.user_schema(t.typnamespace) and not pg_temp.in_extension('pg_type', t.oid)
union all
-- Sequences' parameters (their relation line has owner and ACL)
select 12, s.seqrelid::regclass::text,
       format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
              s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
              s.seqcycle,
              coalesce((select format('%s.%I', d.refobjid::regclass, a.attname)
                          from pg_depend as d
                          join pg_attribute as a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
                         where d.classid = 'pg_class'::regclass and d.objid = s.seqrelid
                           and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')), '(none)'))
  from pg_sequence as s
  join pg_class as c on c.oid = s.seqrelid
 where pg_temp.user_schema(c.relnamespace) and not pg_temp.in_extension('pg_class', c.oid)
union all
-- Default privileges
select 13, format('%s %s %s', d.defaclrole::regrole, coalesce(d.defaclnamespace::regnamespace::text, '-'), d.defaclobjtype),
       format('default privileges of %s in %s on %s: %s', d.defaclrole::regrole,
              coalesce(d.defaclnamespace::regnamespace::text, '(all schemas)'), d.defaclobjtype,
              pg_temp.acl(d.defaclacl, d.defaclobjtype::text, 0))
  from pg_default_acl as d
union all
-- Publications and their tables
select 14, p.pubname::text,
       format('publication %I owner=%s all_tables=%s insert=%s update=%s delete=%s truncate=%s via_root=%s',
              p.pubname, p.pubowner::regrole, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete,
              p.pubtruncate, p.pubviaroot)
  from pg_publication as p
union all
select 15, format('%s %I.%I', pt.pubname, pt.schemaname, pt.tablename),
       format('publication %I table %I.%I columns=%s row_filter=%s', pt.pubname, pt.schemaname, pt.tablename,
              pt.attnames, coalesce(pt.rowfilter, '(none)'))
  from pg_publication_tables as pt
union all
-- Event triggers
select 16, e.evtname::text,
       format('event trigger %I on %s function %s enabled=%s tags=%s', e.evtname, e.evtevent, e.evtfoid::regproc,
              e.evtenabled, coalesce(e.evttags::text, '(none)'))
  from pg_event_trigger as e;

select item from catalogue order by section, key, item;

-- The rows of every table (seed data such as the dispatch policy's one row), each table's in a fixed order.
select format('select %L || '' '' || r::text from %s as r order by r::text', 'row ' || c.oid::regclass, c.oid::regclass)
  from pg_class as c
 where c.relkind in ('r', 'p')
   and pg_temp.user_schema(c.relnamespace) and not pg_temp.in_extension('pg_class', c.oid)
 order by c.oid::regclass::text
\gexec
