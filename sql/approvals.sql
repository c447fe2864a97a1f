-- Four-eyes governance: with four_eyes_enabled, contact policy changes go through approval
-- requests with stages decided in order by users holding each stage's role; the requester
-- cannot approve; approval applies the change atomically and is audited; rejection changes
-- nothing. docs/security.md, "Four-eyes governance".
\set VERBOSITY terse
CREATE ROLE regress_gov_app;
SELECT kaireon.grant_app_role('regress_gov_app');
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('gov', 'Governed', 'gov'), ('free', 'Free', 'free');
INSERT INTO kaireon.tenant_settings (tenant_id, four_eyes_enabled, settings)
    VALUES ('gov', true, '{"approvalStages": {"contact_policy.change": [{"name": "review", "requiredRole": "approver"},
                                                                        {"name": "compliance", "requiredRole": "compliance"}]}}');
INSERT INTO kaireon.users (tenant_id, id, email, role) VALUES
    ('gov', 'alice', 'alice@example.com', 'editor'),     -- requests changes
    ('gov', 'bob', 'bob@example.com', 'approver'),       -- first stage
    ('gov', 'erin', 'erin@example.com', 'viewer'),       -- compliance officer (custom role)
    ('gov', 'dave', 'dave@example.com', 'viewer'),       -- no approval role
    ('free', 'frank', 'frank@example.com', 'approver');  -- another tenant's approver
-- platform administrators (no tenant): pat is an approver; dave is also the id of a user
-- of gov, so in gov the name dave means that user
INSERT INTO kaireon.platform_users (id, email, role) VALUES
    ('pat', 'pat@example.com', 'approver'), ('dave', 'dave@example.com', 'approver');
INSERT INTO kaireon.custom_roles (tenant_id, id, name) VALUES ('gov', 'cr1', 'compliance');
INSERT INTO kaireon.custom_role_assignments (tenant_id, user_id, role_id) VALUES ('gov', 'erin', 'cr1');
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config)
    VALUES ('free', 'p-free', 'Free cap', 'frequency_cap', '{"maxCount": 3, "period": "day"}');
-- Errors that name a request show <id> for its generated id.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' ||
           regexp_replace(SQLERRM, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END $$;
SELECT kaireon.four_eyes_required('gov') AS gov, kaireon.four_eyes_required('free') AS free,
       kaireon.four_eyes_required('nobody') AS unknown;
SELECT action, entity_type, apply_function, validate_function FROM kaireon.approval_actions ORDER BY action;

SET ROLE regress_gov_app;
SET kaireon.tenant_id = 'gov';
SET kaireon.user_id = 'alice';
-- direct changes of a governed table are refused
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config)
    VALUES ('gov', 'p1', 'Three a day', 'frequency_cap', '{"maxCount": 3, "period": "day"}');
-- and so is writing the approval tables, or setting the apply marker
INSERT INTO kaireon.approval_requests (tenant_id, entity_type, action, requester_id, status)
    VALUES ('gov', 'contact_policies', 'contact_policy.change', 'alice', 'approved');
SET kaireon.applying_approval = 'x';
SELECT set_config('kaireon.applying_approval', 'x', false);
-- a request, checked when it is filed
SELECT kaireon.request_approval('gov', 'contact_policy.delete', 'p1', '{}');
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '[]');
SELECT kaireon.request_approval('gov', 'contact_policy.change', NULL, '{"operation": "create", "values": {"name": "x", "rule_type": "frequency_cap", "config": {"maxCount": "3"}}}');
SELECT kaireon.request_approval('gov', 'contact_policy.change', NULL, '{"operation": "create", "values": {"name": "x", "rule_type": "frequency_cap", "tenant_id": "free"}}');
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'nope', '{"operation": "update", "values": {"priority": 1}}');
SELECT kaireon.request_approval('free', 'contact_policy.change', NULL, '{"operation": "create", "values": {"name": "x", "rule_type": "cooldown"}}');
RESET kaireon.user_id;
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '{"operation": "delete"}');
SET kaireon.user_id = 'alice';
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1',
        '{"operation": "create", "values": {"name": "Three a day", "rule_type": "frequency_cap", "priority": 5, "config": {"maxCount": 3, "period": "day"}},
          "scopes": [{"scope": "channel", "scopeId": "email"}]}', 'caps email') AS req1 \gset
SELECT status, requester_id, entity_type, entity_id, reason FROM kaireon.approval_requests WHERE id = :'req1';
SELECT ordinal, stage_name, required_role, status FROM kaireon.approval_request_stages
 WHERE approval_request_id = :'req1' ORDER BY ordinal;

-- The requester cannot approve their own request.
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req1'));
-- Stages are decided in order: the compliance officer cannot decide the first stage, a user
-- without the role cannot either, nor another tenant's approver.
SET kaireon.user_id = 'erin';
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req1'));
SET kaireon.user_id = 'dave';
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req1'));
SET kaireon.user_id = 'frank';
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req1'));
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('gov', :'req1', 'looks right') AS first_stage;
-- not applied until the last stage
SELECT count(*) AS policies_after_first_stage FROM kaireon.contact_policies WHERE id = 'p1';
-- the first approver cannot decide the second stage too
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req1'));
SET kaireon.user_id = 'erin';
SELECT kaireon.approve_request('gov', :'req1', 'compliant') AS second_stage;
SELECT id, name, priority, config, status FROM kaireon.contact_policies WHERE tenant_id = 'gov';
SELECT scope, scope_id FROM kaireon.contact_policy_scopes WHERE contact_policy_id = 'p1';
SELECT r.status, r.approver_id, r.decided_at IS NOT NULL AS decided, r.applied_at IS NOT NULL AS applied,
       array_agg(s.stage_name || ':' || s.status || ':' || s.approver_id || ':' || s.comment ORDER BY s.ordinal) AS stages
  FROM kaireon.approval_requests r JOIN kaireon.approval_request_stages s ON s.approval_request_id = r.id
 WHERE r.id = :'req1' GROUP BY 1, 2, 3, 4;
-- an applied request cannot be decided again
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req1'));
-- the marker is gone once approve_request returns
SELECT kaireon.approval_in_progress() IS NULL AS not_applying;

-- A rejected request changes nothing.
SET kaireon.user_id = 'alice';
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '{"operation": "update", "values": {"priority": 99}}') AS req2 \gset
SET kaireon.user_id = 'bob';
SELECT pg_temp.try(format('SELECT kaireon.reject_request(%L, %L, %L)', 'gov', :'req2', 'too aggressive'));
SELECT status, approver_id, reason FROM kaireon.approval_requests WHERE id = :'req2';
SELECT array_agg(status ORDER BY ordinal) AS stages FROM kaireon.approval_request_stages WHERE approval_request_id = :'req2';
SELECT priority FROM kaireon.contact_policies WHERE id = 'p1';
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req2'));
-- the requester may cancel a pending request, nobody else may
SET kaireon.user_id = 'alice';
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '{"operation": "soft_delete"}') AS req3 \gset
SET kaireon.user_id = 'bob';
SELECT pg_temp.try(format('SELECT kaireon.cancel_request(%L, %L)', 'gov', :'req3'));
SET kaireon.user_id = 'alice';
SELECT pg_temp.try(format('SELECT kaireon.cancel_request(%L, %L)', 'gov', :'req3'));
SELECT kaireon.cancel_request('gov', 'no-such-request');

-- A platform user holding the stage's role decides it; a platform user whose id is also a
-- user of the tenant is that user there (dave: a viewer of gov, no approval role).
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '{"operation": "update", "values": {"priority": 6}}') AS req_pu \gset
SET kaireon.user_id = 'dave';
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req_pu'));
SET kaireon.user_id = 'pat';
SELECT kaireon.approve_request('gov', :'req_pu', 'platform review') AS platform_first_stage;
SELECT array_agg(stage_name || ':' || status || ':' || coalesce(approver_id, '-') ORDER BY ordinal) AS stages
  FROM kaireon.approval_request_stages WHERE approval_request_id = :'req_pu';
SET kaireon.user_id = 'alice';
SELECT kaireon.cancel_request('gov', :'req_pu') AS cancelled;

-- Approval is atomic: when the change cannot be applied, nothing of the approval stays.
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '{"operation": "update", "values": {"priority": 7}}') AS req4 \gset
SELECT kaireon.request_approval('gov', 'contact_policy.change', 'p1', '{"operation": "delete"}') AS req5 \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('gov', :'req4'), kaireon.approve_request('gov', :'req5');
SET kaireon.user_id = 'erin';
SELECT kaireon.approve_request('gov', :'req5') AS deleted;
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req4'));
SELECT r.status, array_agg(s.status ORDER BY s.ordinal) AS stages
  FROM kaireon.approval_requests r JOIN kaireon.approval_request_stages s ON s.approval_request_id = r.id
 WHERE r.id = :'req4' GROUP BY 1;

-- Turning four-eyes off needs approval too; then direct changes work again.
UPDATE kaireon.tenant_settings SET four_eyes_enabled = false WHERE tenant_id = 'gov';
UPDATE kaireon.tenant_settings SET settings = '{}' WHERE tenant_id = 'gov';
UPDATE kaireon.tenant_settings SET ml_worker_config = '{"threads": 2}' WHERE tenant_id = 'gov';
DELETE FROM kaireon.tenant_settings WHERE tenant_id = 'gov';
SET kaireon.user_id = 'alice';
SELECT kaireon.request_approval('gov', 'four_eyes.settings_change', NULL, '{"four_eyes_enabled": "no"}');
SELECT kaireon.request_approval('gov', 'four_eyes.settings_change', NULL, '{"four_eyes_enabled": false}') AS req6 \gset
SET kaireon.user_id = 'bob';
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'req6'));
SELECT four_eyes_enabled FROM kaireon.tenant_settings WHERE tenant_id = 'gov';
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config)
    VALUES ('gov', 'p2', 'Direct', 'cooldown', '{"hours": 24}');
-- turning it on needs no approval, and from then on changes are governed again
UPDATE kaireon.tenant_settings SET four_eyes_enabled = true WHERE tenant_id = 'gov';
DELETE FROM kaireon.contact_policies WHERE id = 'p2';
-- a tenant without four-eyes changes its policies directly
SET kaireon.tenant_id = 'free';
UPDATE kaireon.contact_policies SET priority = 3 WHERE id = 'p-free';
RESET ROLE;

-- Everything is in the audit log, with the user who acted.
SELECT entity_type, action, user_id, changed_fields
  FROM kaireon.audit_logs WHERE tenant_id = 'gov'
   AND entity_type IN ('contact_policies', 'contact_policy_scopes', 'approval_requests', 'approval_request_stages', 'tenant_settings')
   AND id >= (SELECT min(id) FROM kaireon.audit_logs WHERE tenant_id = 'gov' AND entity_type = 'approval_requests')
 ORDER BY id;
SELECT intact FROM kaireon.verify_audit_chain('gov');

-- An approval action's functions must take (tenant_id text, entity_id text, payload jsonb).
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
    VALUES ('bad.action', 'offers', 'kaireon.version()', 'wrong signature');

-- The functions are named by their signature text, not by OID (docs/schema.md, "Functions
-- named in tables"): stored in canonical form (regprocedure's text with search_path
-- pg_catalog), checked when written, looked up by name at every call.
CREATE TABLE public.gov_notes (tenant_id text, entity_id text, note text);
CREATE FUNCTION public.note_apply(tenant_id text, entity_id text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO public.gov_notes VALUES (tenant_id, entity_id, payload ->> 'note') $$;
CREATE FUNCTION public.note_validate(tenant_id text, entity_id text, payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT payload ? 'note' THEN
        RAISE EXCEPTION 'a note needs "note"' USING ERRCODE = '22023';
    END IF;
END $$;
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description)
    VALUES ('test.note', 'gov_notes', 'public.note_apply(text, pg_catalog.text, jsonb)',
            'public.note_validate(text,text,jsonb)', 'A note.');
SELECT apply_function, validate_function, pg_typeof(apply_function) AS stored_as
  FROM kaireon.approval_actions WHERE action = 'test.note';
SET ROLE regress_gov_app;
SET kaireon.tenant_id = 'gov';
SET kaireon.user_id = 'alice';
SELECT pg_temp.try($$SELECT kaireon.request_approval('gov', 'test.note', 'n0', '{}')$$);
SELECT kaireon.request_approval('gov', 'test.note', 'n1', '{"note": "first"}') AS note1 \gset
SELECT kaireon.request_approval('gov', 'test.note', 'n2', '{"note": "second"}') AS note2 \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('gov', :'note1') AS note1_status;
RESET ROLE;
SELECT entity_id, note FROM public.gov_notes;
-- a function dropped since it was registered: a clear error when it is called, nothing done
-- (the request stays pending); created again with the same signature, it is found again
DROP FUNCTION public.note_apply(text, text, jsonb);
SET ROLE regress_gov_app;
SELECT pg_temp.try(format('SELECT kaireon.approve_request(%L, %L)', 'gov', :'note2'));
RESET ROLE;
SELECT status FROM kaireon.approval_requests WHERE id = :'note2';
CREATE FUNCTION public.note_apply(tenant_id text, entity_id text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO public.gov_notes VALUES (tenant_id, entity_id, payload ->> 'note' || ' (again)') $$;
SET ROLE regress_gov_app;
SELECT kaireon.approve_request('gov', :'note2') AS note2_status;
RESET ROLE;
SELECT entity_id, note FROM public.gov_notes ORDER BY entity_id;
DROP FUNCTION public.note_validate(text, text, jsonb);
SET ROLE regress_gov_app;
SET kaireon.user_id = 'alice';
SELECT pg_temp.try($$SELECT kaireon.request_approval('gov', 'test.note', 'n3', '{"note": "third"}')$$);
RESET ROLE;
SELECT count(*) AS note3_requests FROM kaireon.approval_requests WHERE entity_id = 'n3';
CREATE FUNCTION public.note_validate(tenant_id text, entity_id text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;

-- Refused when written (the message names the value; nothing is written): no such function,
-- a name without its schema (looked up with search_path pg_catalog, whatever the session's),
-- text that is no signature, arguments no function has (the lookup is by exact signature),
-- a result other than void, a temporary function; an UPDATE is checked the same way.
\set VERBOSITY default
\set SHOW_CONTEXT never
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
    VALUES ('bad.missing', 'offers', 'public.no_such_apply(text,text,jsonb)', 'missing');
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
    VALUES ('bad.unqualified', 'offers', 'note_apply(text,text,jsonb)', 'no schema');
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
    VALUES ('bad.syntax', 'offers', 'public.note_apply', 'no arguments');
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description)
    VALUES ('bad.args', 'offers', 'public.note_apply(text,text,jsonb)', 'public.note_validate(text,jsonb,text)', 'wrong order');
CREATE FUNCTION public.note_check(tenant_id text, entity_id text, payload jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT payload ? 'note' $$;
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description)
    VALUES ('bad.result', 'offers', 'public.note_apply(text,text,jsonb)', 'public.note_check(text,text,jsonb)', 'returns a boolean');
CREATE FUNCTION pg_temp.note_temp(tenant_id text, entity_id text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
    VALUES ('bad.temp', 'offers', 'pg_temp.note_temp(text,text,jsonb)', 'temporary');
UPDATE kaireon.approval_actions SET apply_function = 'public.no_such_apply(text,text,jsonb)' WHERE action = 'test.note';
\set VERBOSITY terse
-- nor may an admin role register a function of its own: it would run with the rights of
-- request_approval / approve_request (SECURITY DEFINER), so it must be owned by a superuser
CREATE ROLE regress_gov_admin;
SELECT kaireon.grant_admin_role('regress_gov_admin');
GRANT CREATE ON SCHEMA public TO regress_gov_admin;
SET ROLE regress_gov_admin;
CREATE FUNCTION public.admin_apply(tenant_id text, entity_id text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
    VALUES ('bad.owner', 'offers', 'public.admin_apply(text,text,jsonb)', 'an admin''s function');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT action, apply_function, validate_function FROM kaireon.approval_actions
 WHERE action LIKE 'bad.%' OR action = 'test.note' ORDER BY action;

-- No kaireon table stores an OID (a reg* type or oid, an array or a domain of one): an OID
-- means nothing on another node of a Citus cluster, nor in a restored database. Listed: the
-- one left, tenant_pins.role (regrole, keyed by the role's OID so that a renamed role stays
-- pinned; docs/security.md, "Tenant pins"), not changed here (issue 13).
WITH RECURSIVE col AS (
    SELECT c.relname, a.attname, a.atttypid AS typ, a.atttypid AS base
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT col.relname, col.attname, col.typ, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
      FROM col JOIN pg_type t ON t.oid = col.base
     WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
)
SELECT relname, attname, typ::regtype AS type FROM col
 WHERE base IN ('oid'::regtype, 'regproc'::regtype, 'regprocedure'::regtype, 'regoper'::regtype,
                'regoperator'::regtype, 'regclass'::regtype, 'regcollation'::regtype, 'regtype'::regtype,
                'regrole'::regtype, 'regnamespace'::regtype, 'regconfig'::regtype, 'regdictionary'::regtype)
 ORDER BY 1, 2;

-- clean up
DELETE FROM kaireon.tenants WHERE id IN ('gov', 'free');
DELETE FROM kaireon.platform_users WHERE id IN ('pat', 'dave');
DELETE FROM kaireon.approval_actions WHERE action = 'test.note';
DROP FUNCTION public.note_apply(text, text, jsonb), public.note_validate(text, text, jsonb),
              public.note_check(text, text, jsonb);
DROP TABLE public.gov_notes;
DROP OWNED BY regress_gov_app, regress_gov_admin;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_gov_app', 'regress_gov_admin');
DROP ROLE regress_gov_app, regress_gov_admin;
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
RESET session_replication_role;
