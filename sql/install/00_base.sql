-- kaireon install script, part 00: C entry points used by the schema, and the tenant root.
-- The install script is assembled from sql/install/*.sql in file-name order (see Makefile).
-- Conventions every table follows are in docs/schema.md ("Conventions"); 99_finalize.sql
-- applies the uniform parts (updated_at trigger, row level security, soft-delete index,
-- pg_dump registration) to every table from the catalog.

\echo Use "CREATE EXTENSION kaireon" to load this file. \quit

-- kaireon's internal helpers (functions named _...) live in their own schema, out of the API
-- schema kaireon and out of \df kaireon.*: they are implementation details of the public
-- functions, triggers and checks, may change without notice, and are callable by no role
-- but the few pure ones 99_finalize.sql grants (docs/sql-reference.md, "Internal helpers").
CREATE SCHEMA kaireon_internal;
COMMENT ON SCHEMA kaireon_internal IS
    'kaireon''s internal helper functions (implementation details of the kaireon API; not for direct use).';

CREATE FUNCTION kaireon.version() RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.version() IS
    'Version of the loaded kaireon C module.';

-- PARALLEL RESTRICTED: the tenant a session acts for is per-backend state (a running stored
-- query's confinement, src/security/confine.c) that parallel workers do not share, so the
-- row security checks that call it run in the leader, never in a worker.
CREATE FUNCTION kaireon.current_tenant_id() RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_current_tenant_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION kaireon.current_tenant_id() IS
    'Tenant the session acts for: the tenant its roles are pinned to (kaireon.pin_role, kaireon.pinned_tenant_id), else kaireon.tenant_id, else NULL; 42501 when kaireon.tenant_id names another tenant than the pinned one. Row level security compares tenant_id with it.';

CREATE FUNCTION kaireon.set_tenant(tenant_id text, user_id text DEFAULT NULL, request_id text DEFAULT NULL,
                                   local boolean DEFAULT true) RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_set_tenant'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.set_tenant(text, text, text, boolean) IS
    'Sets kaireon.tenant_id, kaireon.user_id and kaireon.request_id together (the last two to '''''' when not given), for the current transaction (local, the default: safe behind a transaction-pooling pooler; 25P01 outside a transaction block) or the session. Returns the tenant now in effect; 42501 for a tenant the session''s pin forbids.';

CREATE FUNCTION kaireon.assert_tenant_access(tenant_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_assert_tenant_access'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.assert_tenant_access(text) IS
    'Raises 42501 unless the calling role (superuser, BYPASSRLS, or a session whose current tenant is tenant_id) may act for tenant_id. Used by SECURITY DEFINER functions.';

CREATE FUNCTION kaireon.touch_updated_at() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_touch_updated_at'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.touch_updated_at() IS
    'BEFORE UPDATE row trigger keeping updated_at at the transaction time.';

-- Optional references between tenant tables are foreign keys ON DELETE NO ACTION whose
-- referencing column this trigger sets to NULL when the referenced row is deleted (Citus
-- refuses ON DELETE SET NULL between distributed tables); 99_finalize.sql creates it from the
-- catalog, and docs/schema.md ("Optional references") says why.
CREATE FUNCTION kaireon.on_delete_set_null() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_on_delete_set_null'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.on_delete_set_null() IS
    'AFTER DELETE row trigger "On_delete_set_null" of a table referenced by optional references (foreign keys (tenant_id, col) ON DELETE NO ACTION): sets col to NULL in the deleted row''s tenant''s rows that referred to it, as the referencing table''s owner. Arguments: (table, column, referenced column) per key; created by the install script from the catalog.';

CREATE FUNCTION kaireon.validate_config_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_config_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.validate_config_trigger() IS
    'BEFORE INSERT OR UPDATE row trigger (kind, type_column, config_column) validating a JSON configuration column; raises 22023 naming the bad field.';

CREATE FUNCTION kaireon.validate_config(kind text, rule_type text DEFAULT NULL, config text DEFAULT '{}')
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_validate_config_sql'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.validate_config(text, text, text) IS
    'Validates a configuration document (kind qualification_rule, contact_policy or guardrail) given as JSON text: true, or 22023 naming the bad field or the JSON syntax error.';

-- The one list of each kind of type name is in the C module (src/config/types.h); the
-- tables' CHECK constraints repeat them, and the regress test type_lists compares the two.
CREATE FUNCTION kaireon_internal._type_names(kind text) RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'kaireon_type_names'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._type_names(text) IS
    'Internal: the names of one type list of the C module (kind qualification_rule, contact_policy or scope), in list order; 22023 for another kind.';

-- No NaN or Infinity where money, counts, rates or weights live (docs/schema.md, "Finite
-- numbers"): 99_finalize.sql gives every numeric and double precision column of kaireon's
-- tables a constraint <table>_<column>_finite calling these. A numeric is finite when a
-- double precision can hold it (the decision engine computes in doubles), so 1e400 is
-- refused too. NULL passes, as in any CHECK.
-- (C functions, src/util/finite.c: a SQL function in a CHECK is inlined again by every
-- statement that prepares the table's constraints.)
CREATE FUNCTION kaireon_internal._is_finite(value double precision) RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_is_finite_float8'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._is_finite(double precision) IS
    'Is the value a finite number (not NaN, Infinity or -Infinity)? NULL for NULL. The check of every double precision column of kaireon''s tables.';

CREATE FUNCTION kaireon_internal._is_finite(value numeric) RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_is_finite_numeric'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._is_finite(numeric) IS
    'Is the value a finite number that a double precision can hold (not NaN, Infinity, -Infinity, nor beyond 1.7976931348623157e308 in magnitude)? NULL for NULL. The check of every numeric column of kaireon''s tables.';

-- Functions named in kaireon's tables (approval_actions' apply and validate functions,
-- outbox_handlers' handlers) are stored as the text of their signature, never as an OID
-- (regprocedure): an OID means nothing on another node of a Citus cluster (these tables are
-- reference tables, copied to every node) nor in another database, and pg_upgrade refuses a
-- table with a regprocedure column. The text is canonical, as regprocedure prints it with
-- search_path pg_catalog ('kaireon_internal._apply_x(text,text,jsonb)'), and is resolved by
-- name at every use (docs/schema.md, "Functions named in tables").
CREATE FUNCTION kaireon_internal._resolve_function(signature text, arg_types regtype[], what text, of_what text,
                                                   registering boolean DEFAULT false)
    RETURNS regprocedure
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_fn        regprocedure;
    v_proc      pg_proc%ROWTYPE;
    v_state     text;
    v_args      text := array_to_string(arg_types::text[], ', ');
BEGIN
    IF signature IS NULL THEN
        RAISE EXCEPTION 'the % of % must not be null', what, of_what
            USING ERRCODE = '22004', HINT = format('Name a function by its signature, as in public.f(%s).', v_args);
    END IF;
    -- resolved with search_path pg_catalog only: the same text finds the same function for
    -- every session, node and restore, so a name outside pg_catalog needs its schema
    BEGIN
        v_fn := to_regprocedure(signature);
    EXCEPTION WHEN invalid_text_representation OR invalid_name OR syntax_error OR undefined_object THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
        IF v_state <> '42704' THEN          -- (42704, an argument type that does not exist: no such function)
            RAISE EXCEPTION '% "%" of % is not a function signature', what, signature, of_what
                USING ERRCODE = '22023', HINT = format('Write schema.name(argument types), as in public.f(%s).', v_args);
        END IF;
    END;
    IF v_fn IS NULL THEN
        RAISE EXCEPTION '% "%" of % %', what, signature, of_what,
                        CASE WHEN registering THEN 'does not exist' ELSE 'no longer exists' END
            USING ERRCODE = '42883',
                  HINT = CASE WHEN NOT registering
                              THEN 'It was dropped, renamed or moved, or its argument types changed, since it was registered: create it again with this signature, or register another function.'
                              WHEN split_part(signature, '(', 1) !~ '[.]'
                              THEN 'Name the function with its schema, as in public.f(...): the name is looked up with search_path pg_catalog.'
                              ELSE 'Create the function first: it is looked up by its schema, name and argument types.' END;
    END IF;
    SELECT * INTO v_proc FROM pg_proc p WHERE p.oid = v_fn;
    IF v_proc.pronamespace = pg_my_temp_schema() OR pg_is_other_temp_schema(v_proc.pronamespace) THEN
        RAISE EXCEPTION '% "%" of % is a temporary function', what, signature, of_what
            USING ERRCODE = '42P13', HINT = 'Name a function of a permanent schema: it is looked up again at every use.';
    END IF;
    IF v_proc.prokind <> 'f' OR v_proc.proretset OR v_proc.prorettype <> 'void'::regtype
       OR ARRAY(SELECT unnest(v_proc.proargtypes)) IS DISTINCT FROM arg_types::oid[] THEN
        RAISE EXCEPTION '% "%" of % must be a function taking (%) and returning void', what, signature, of_what, v_args
            USING ERRCODE = '42P13',
                  HINT = format('Declare it as f(%s) RETURNS void; it signals a failure by raising an error.', v_args);
    END IF;
    -- it runs with the rights of the kaireon function that calls it (a superuser's)
    IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = v_proc.proowner) THEN
        RAISE EXCEPTION '% "%" of % is not owned by a superuser', what, signature, of_what
            USING ERRCODE = '42501',
                  HINT = 'It runs with the privileges of the kaireon function that calls it: a superuser must create (or own) it.';
    END IF;
    RETURN v_fn;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._resolve_function(text, regtype[], text, text, boolean) IS
    'Internal: the function a stored signature text names (approval_actions, outbox_handlers), looked up with search_path pg_catalog; errors name it as "<what> <signature> of <of_what>": 22023 for text that is no signature, 42883 when no such function exists (worded for a new row when registering), 42P13 for a temporary function or one that does not take arg_types and return void, 42501 when no superuser owns it. Its ::text with search_path pg_catalog is the canonical form stored.';

-- The tenant root. Every tenant-scoped table references it with ON DELETE CASCADE.
CREATE TABLE kaireon.tenants (
    id                      text NOT NULL DEFAULT gen_random_uuid()::text PRIMARY KEY
                            CHECK (length(id) BETWEEN 1 AND 200),
    name                    text NOT NULL,
    slug                    text NOT NULL UNIQUE
                            CHECK (slug ~ '^[a-z][a-z0-9_]{0,39}$'),
    settings                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    ai_analyzer_settings    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(ai_analyzer_settings) = 'object'),
    is_playground           boolean NOT NULL DEFAULT false,
    -- the decision trace sample rate, when set, is a number from 0 to 1
    CONSTRAINT tenants_trace_sample_rate_check CHECK (
        CASE WHEN settings ? 'decisionTraceSampleRate'
             THEN CASE WHEN jsonb_typeof(settings -> 'decisionTraceSampleRate') = 'number'
                       THEN (settings ->> 'decisionTraceSampleRate')::float8 BETWEEN 0 AND 1
                       ELSE false END
             ELSE true END),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.tenants IS
    'Tenant: multi-tenant root; per-tenant feature flags in settings. slug names the tenant''s customer data schema kaireon_t_<slug>.';
-- A tenant-limited role sees only its own tenant row.
ALTER TABLE kaireon.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.tenants
    USING (id = kaireon.current_tenant_id()) WITH CHECK (id = kaireon.current_tenant_id());
