-- kaireon install script, part 25: customer data schemas and segments as real tables and views.
--
-- A tenant's data lives in its own schema kaireon_t_<tenant slug>: publish_data_schema creates
-- ds_<name> there from schema_fields (and adds columns for fields added later), publish_segment
-- compiles a segment's filters and joins into the view seg_<id prefix>. Every identifier is
-- validated against a strict pattern and quoted with format('%I'); every value is quoted with
-- format('%L') and cast to the column's type. See docs/data-schemas.md.

-- Privileges granted through kaireon.grant_*_role, re-applied to each tenant data schema.
CREATE TABLE kaireon.role_grants (
    role_name               name NOT NULL PRIMARY KEY,
    access                  text NOT NULL CHECK (access IN ('app', 'readonly', 'admin')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.role_grants IS
    'kaireon''s own table: roles given access with kaireon.grant_app_role / grant_readonly_role / grant_admin_role; publishing a data schema grants them the same access to the tenant''s ds_ tables and segment views. Written only by those functions: row level security with no policy hides it from every role but superusers and BYPASSRLS roles.';
ALTER TABLE kaireon.role_grants ENABLE ROW LEVEL SECURITY;

-- Roles limited to one tenant (kaireon.pin_role; docs/security.md, "Tenant pins"). Keyed by
-- the role's OID (regrole): a renamed role stays pinned, and pg_dump writes the role's name, so
-- restore the roles (pg_dumpall --roles-only) before the database, as for its GRANTs. No
-- foreign key to tenants: a pin outlives a deleted tenant (its roles then see no tenant's
-- rows) rather than vanishing with it. Every backend caches the pins; the trigger below
-- makes them reload after each change (also in a logical-replication apply worker: ALWAYS).
CREATE TABLE kaireon.tenant_pins (
    role                    regrole NOT NULL PRIMARY KEY,
    pinned_tenant_id        text NOT NULL CHECK (length(pinned_tenant_id) BETWEEN 1 AND 200),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.tenant_pins IS
    'kaireon''s own table: roles pinned to one tenant with kaireon.pin_role. A pinned role, and every role that is a member of it, may act only for its tenant, whatever SET ROLE or SET SESSION AUTHORIZATION did. Hidden from every role but superusers and BYPASSRLS roles.';
ALTER TABLE kaireon.tenant_pins ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION kaireon_internal._tenant_pins_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_tenant_pins_changed'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._tenant_pins_changed() IS
    'Internal: AFTER trigger of kaireon.tenant_pins; makes every backend reload the tenant pins once the change commits.';
CREATE TRIGGER tenant_pins_changed AFTER INSERT OR UPDATE OR DELETE ON kaireon.tenant_pins
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._tenant_pins_changed();
CREATE TRIGGER tenant_pins_truncated AFTER TRUNCATE ON kaireon.tenant_pins
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._tenant_pins_changed();
ALTER TABLE kaireon.tenant_pins ENABLE ALWAYS TRIGGER tenant_pins_changed;
ALTER TABLE kaireon.tenant_pins ENABLE ALWAYS TRIGGER tenant_pins_truncated;

-- Which tenant owns each tenant data schema. No foreign key to tenants: the claim outlives a
-- deleted tenant, so a later tenant that reuses the slug cannot take over its tables.
CREATE TABLE kaireon.tenant_schemas (
    schema_name             name NOT NULL PRIMARY KEY,
    owner_tenant_id         text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.tenant_schemas IS
    'kaireon''s own table: the tenant that owns each kaireon_t_<slug> schema; kept after the tenant is deleted, so a reused slug cannot reach the old tables. Hidden from every role but superusers and BYPASSRLS roles.';
ALTER TABLE kaireon.tenant_schemas ENABLE ROW LEVEL SECURITY;

-- A tenant's slug names its data schema, so it cannot change once set.
CREATE FUNCTION kaireon_internal._tenant_slug_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NEW.slug IS DISTINCT FROM OLD.slug THEN
        RAISE EXCEPTION 'the slug of tenant "%" cannot change (from "%" to "%")', OLD.id, OLD.slug, NEW.slug
            USING ERRCODE = '55000', HINT = 'The slug names the tenant''s data schema kaireon_t_<slug>; create a new tenant instead.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._tenant_slug_immutable() IS
    'Internal: BEFORE UPDATE trigger on tenants refusing a change of slug.';
CREATE TRIGGER slug_immutable BEFORE UPDATE OF slug ON kaireon.tenants
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._tenant_slug_immutable();

CREATE FUNCTION kaireon_internal._check_identifier(kind text, ident text, max_len integer DEFAULT 40)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF ident IS NULL OR ident !~ '^[a-z][a-z0-9_]*$' OR length(ident) > max_len THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, left(coalesce(ident, '(null)'), 100)
            USING ERRCODE = '42602',
                  HINT = format('A %s name starts with a lower-case letter, holds only a-z, 0-9 and _, and is at most %s characters.',
                                kind, max_len);
    END IF;
    RETURN ident;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_identifier(text, text, integer) IS
    'Internal: returns ident if it is a safe identifier (^[a-z][a-z0-9_]*$, at most max_len characters), else raises 42602 naming it.';

CREATE FUNCTION kaireon_internal._tenant_data_schema(p_tenant_id text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_slug      text;
BEGIN
    SELECT slug INTO v_slug FROM kaireon.tenants WHERE id = p_tenant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant_id
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.tenants first.';
    END IF;
    RETURN 'kaireon_t_' || kaireon_internal._check_identifier('tenant slug', v_slug);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._tenant_data_schema(text) IS
    'Internal: name of the schema holding a tenant''s ds_ tables and segment views (kaireon_t_<slug>).';

CREATE FUNCTION kaireon_internal._claim_tenant_schema(p_tenant_id text) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_nsp       text := kaireon_internal._tenant_data_schema(p_tenant_id);
    v_owner     text;
BEGIN
    -- One claim at a time per schema name (two first publishes of a tenant would otherwise
    -- both try CREATE SCHEMA).
    PERFORM pg_advisory_xact_lock(hashtext('kaireon.tenant_schemas'), hashtext(v_nsp));
    SELECT owner_tenant_id INTO v_owner FROM kaireon.tenant_schemas WHERE schema_name = v_nsp;
    IF FOUND AND v_owner <> p_tenant_id THEN
        RAISE EXCEPTION 'schema "%" belongs to tenant "%", not to tenant "%"', v_nsp, v_owner, p_tenant_id
            USING ERRCODE = '42501',
                  HINT = 'A slug of a deleted tenant stays claimed by it; drop the schema and delete its kaireon.tenant_schemas row, or use another slug.';
    END IF;
    IF NOT FOUND THEN
        IF to_regnamespace(quote_ident(v_nsp)) IS NOT NULL THEN
            RAISE EXCEPTION 'schema "%" exists but was not created by kaireon', v_nsp
                USING ERRCODE = '55000', HINT = 'Rename or drop that schema, or use another tenant slug.';
        END IF;
        EXECUTE format('CREATE SCHEMA %I', v_nsp);
        INSERT INTO kaireon.tenant_schemas (schema_name, owner_tenant_id) VALUES (v_nsp, p_tenant_id);
    END IF;
    RETURN v_nsp;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._claim_tenant_schema(text) IS
    'Internal: creates the tenant''s data schema on first use and records the claim; refuses a schema owned by another (possibly deleted) tenant or not created by kaireon.';

-- (by its columns, not the row: on Citus the query runs on a shard, whose row type is another)
CREATE FUNCTION kaireon_internal._field_sql_type(p_data_type text, p_length integer, p_precision integer, p_scale integer)
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE p_data_type
        WHEN 'varchar' THEN CASE WHEN p_length IS NULL THEN 'varchar' ELSE format('varchar(%s)', p_length) END
        WHEN 'numeric' THEN CASE WHEN p_precision IS NULL THEN 'numeric'
                                 ELSE format('numeric(%s,%s)', p_precision, coalesce(p_scale, 0)) END
        WHEN 'double' THEN 'double precision'
        WHEN 'timestamp' THEN 'timestamp without time zone'
        WHEN 'timestamptz' THEN 'timestamp with time zone'
        ELSE p_data_type
    END
$fn$;
COMMENT ON FUNCTION kaireon_internal._field_sql_type(text, integer, integer, integer) IS
    'Internal: the PostgreSQL type of a schema field (data_type with length, precision and scale).';

CREATE FUNCTION kaireon_internal._field_column_sql(f kaireon.schema_fields) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_type      text := kaireon_internal._field_sql_type(f.data_type, f.length, f.precision, f.scale);
    v_sql       text;
BEGIN
    v_sql := format('%I %s', kaireon_internal._check_identifier('field', f.name, 63), v_type);
    IF f.default_value IS NOT NULL THEN
        BEGIN
            EXECUTE format('SELECT %L::%s', f.default_value, v_type);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'default value % of field "%" is not a valid %', quote_literal(f.default_value), f.name, v_type
                USING ERRCODE = '22023', DETAIL = SQLERRM,
                      HINT = 'Fix schema_fields.default_value, or set it to NULL.';
        END;
        v_sql := v_sql || format(' DEFAULT %L::%s', f.default_value, v_type);
    END IF;
    IF NOT f.is_nullable THEN
        v_sql := v_sql || ' NOT NULL';
    END IF;
    RETURN v_sql;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._field_column_sql(kaireon.schema_fields) IS
    'Internal: the column definition of a schema field, with its default checked against its type.';

CREATE FUNCTION kaireon_internal._apply_role_grants(p_schema text, p_relation text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    g           record;
BEGIN
    FOR g IN SELECT role_name, access FROM kaireon.role_grants
             WHERE EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = role_name) LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', p_schema, g.role_name);
        IF p_relation IS NOT NULL THEN
            EXECUTE format('GRANT %s ON %I.%I TO %I',
                           CASE g.access WHEN 'readonly' THEN 'SELECT'
                                         WHEN 'app' THEN 'SELECT, INSERT, UPDATE, DELETE'
                                         -- not TRIGGER (see kaireon_internal._grant_role)
                                         ELSE 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES' END,
                           p_schema, p_relation, g.role_name);
        END IF;
    END LOOP;
    -- a tenant's stored SQL reads its data tables and segment views (docs/arbitration.md)
    IF to_regrole('kaireon_confined') IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO kaireon_confined', p_schema);
        IF p_relation IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %I.%I TO kaireon_confined', p_schema, p_relation);
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._apply_role_grants(text, text) IS
    'Internal: grants the roles in kaireon.role_grants their access to a tenant data schema and one of its relations, and kaireon_confined (a tenant''s stored SQL) SELECT on it.';

CREATE FUNCTION kaireon.publish_data_schema(tenant_id text, schema_id text) RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := publish_data_schema.tenant_id;
    p_schema    text := publish_data_schema.schema_id;
    ds          kaireon.data_schemas;
    f           kaireon.schema_fields;
    v_nsp       text;
    v_table     text;
    v_cols      text[] := '{}';
    v_pk        text[] := '{}';
    v_uniques   text[] := '{}';
    v_exists    boolean;
    v_has_rows  boolean;
    v_columns   text[];
BEGIN
    IF p_tenant IS NULL OR p_schema IS NULL THEN
        RAISE EXCEPTION 'tenant_id and schema_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the id of a kaireon.data_schemas row.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);

    -- The row lock serialises concurrent publishes of the same schema.
    SELECT * INTO ds FROM kaireon.data_schemas d WHERE d.tenant_id = p_tenant AND d.id = p_schema FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'data schema "%" does not exist for tenant "%"', p_schema, p_tenant
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.data_schemas first.';
    END IF;
    v_table := 'ds_' || kaireon_internal._check_identifier('data schema', ds.name);

    IF NOT EXISTS (SELECT 1 FROM kaireon.schema_fields sf WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema) THEN
        RAISE EXCEPTION 'data schema "%" has no fields', ds.name
            USING ERRCODE = '22023', HINT = 'Add rows to kaireon.schema_fields before publishing.';
    END IF;
    IF (SELECT count(*) FROM kaireon.schema_fields sf
        WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema AND sf.is_primary_key) <> 1 THEN
        RAISE EXCEPTION 'data schema "%" must have exactly one primary key field', ds.name
            USING ERRCODE = '22023', HINT = 'Set is_primary_key on the field holding the entity id (for customers, the customer id).';
    END IF;

    v_nsp := kaireon_internal._claim_tenant_schema(p_tenant);
    PERFORM kaireon_internal._apply_role_grants(v_nsp, NULL);
    v_exists := to_regclass(format('%I.%I', v_nsp, v_table)) IS NOT NULL;

    IF NOT v_exists THEN
        FOR f IN SELECT * FROM kaireon.schema_fields sf
                 WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema ORDER BY sf.ordinal, sf.name LOOP
            v_cols := v_cols || kaireon_internal._field_column_sql(f);
            IF f.is_primary_key THEN
                v_pk := v_pk || format('%I', f.name);
            ELSIF f.is_unique THEN
                v_uniques := v_uniques || format('UNIQUE (tenant_id, %I)', f.name);
            END IF;
        END LOOP;
        EXECUTE format('CREATE TABLE %I.%I (tenant_id text NOT NULL DEFAULT %L CHECK (tenant_id = %L), %s, PRIMARY KEY (tenant_id, %s)%s)',
                       v_nsp, v_table, p_tenant, p_tenant,
                       array_to_string(v_cols, ', '), v_pk[1],
                       CASE WHEN cardinality(v_uniques) > 0 THEN ', ' || array_to_string(v_uniques, ', ') ELSE '' END);
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', v_nsp, v_table);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())',
                       v_nsp, v_table);
        EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_nsp, v_table,
                       format('kaireon data schema %s of tenant %s (published by kaireon.publish_data_schema)', ds.name, p_tenant));
        -- on Citus (kaireon.distribute()), next to the tenant's other rows
        IF kaireon_internal._citus_table_type('kaireon.tenants') = 'distributed' THEN
            PERFORM kaireon_internal._distribute_tenant_table(format('%I.%I', v_nsp, v_table)::regclass);
        END IF;
    ELSE
        -- Fields added since the last publish become new columns.
        -- (the table's columns first: Citus plans no query joining a catalog with its tables)
        v_columns := ARRAY(SELECT a.attname::text FROM pg_attribute a
                            WHERE a.attrelid = format('%I.%I', v_nsp, v_table)::regclass
                              AND a.attnum > 0 AND NOT a.attisdropped);
        FOR f IN SELECT * FROM kaireon.schema_fields sf
                 WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema
                   AND sf.name <> ALL (v_columns)
                 ORDER BY sf.ordinal, sf.name LOOP
            IF f.is_primary_key THEN
                RAISE EXCEPTION 'cannot change the primary key of published data schema "%" to field "%"', ds.name, f.name
                    USING ERRCODE = '22023', HINT = 'The primary key is fixed when a data schema is first published.';
            END IF;
            IF NOT f.is_nullable AND f.default_value IS NULL THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', v_nsp, v_table) INTO v_has_rows;
                IF v_has_rows THEN
                    RAISE EXCEPTION 'cannot add NOT NULL field "%" without a default to data schema "%", which has rows', f.name, ds.name
                        USING ERRCODE = '22023', HINT = 'Give the field a default_value or make it nullable.';
                END IF;
            END IF;
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %s', v_nsp, v_table, kaireon_internal._field_column_sql(f));
            IF f.is_unique THEN
                EXECUTE format('ALTER TABLE %I.%I ADD UNIQUE (tenant_id, %I)', v_nsp, v_table, f.name);
            END IF;
        END LOOP;
    END IF;
    PERFORM kaireon_internal._apply_role_grants(v_nsp, v_table);

    UPDATE kaireon.schema_fields sf SET published_at = now()
     WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema AND sf.published_at IS NULL;
    UPDATE kaireon.data_schemas d SET status = 'published', published_at = now()
     WHERE d.tenant_id = p_tenant AND d.id = p_schema;
    RETURN format('%I.%I', v_nsp, v_table);
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_data_schema(text, text) IS
    'Creates (first call) or extends (later calls: one ADD COLUMN per new field) the table kaireon_t_<slug>.ds_<name> of a data schema from its schema_fields; returns the table name. Caller must act for the tenant.';

-- The tenant's customer data table: its published customer data schema of that name, or the
-- first by name (the one recommend reads) when p_schema is NULL; the quoted table and key
-- column and {field: is_primary_key}. The one home of this look-up: trigger rules'
-- update_attribute (src/config/validate.c) and journeys' attribute conditions
-- (49_journey_engine.sql) read the table through it. The caller's rights; no row: none.
-- (the tenant's rows first, then the catalogs: Citus plans no query joining both)
CREATE FUNCTION kaireon_internal._customer_data_table(p_tenant text, p_schema text DEFAULT NULL)
    RETURNS TABLE (table_name text, key_column text, fields jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY
    SELECT quote_ident('kaireon_t_' || t.slug) || '.' || quote_ident(d.table_name),
           (SELECT quote_ident(f.name) FROM kaireon.schema_fields f
             WHERE f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key),
           (SELECT jsonb_object_agg(f.name, f.is_primary_key) FROM kaireon.schema_fields f
             WHERE f.tenant_id = d.tenant_id AND f.schema_id = d.id)
      FROM kaireon.data_schemas d JOIN kaireon.tenants t ON t.id = d.tenant_id
     WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND d.status = 'published' AND d.entity_type = 'customer'
       AND (p_schema IS NULL OR d.name = p_schema)
     ORDER BY d.name LIMIT 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._customer_data_table(text, text) IS
    'Internal: the tenant''s customer data table (its published customer data schema named p_schema, else the first by name): quoted table name, quoted key column and {field: is_primary_key}; no row when there is none. Used by trigger rules'' update_attribute and journeys'' attribute conditions.';

-- A filter value as a SQL literal of the column's type; a value the type refuses is reported
-- naming the field instead of failing later inside CREATE VIEW.
CREATE FUNCTION kaireon_internal._segment_literal(field text, value text, sql_type text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    BEGIN
        EXECUTE format('SELECT %L::%s', value, sql_type);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'segment filter value % for field "%" is not a valid %', quote_literal(value), field, sql_type
            USING ERRCODE = '22023', DETAIL = SQLERRM, HINT = 'Compare the field with a value of its type.';
    END;
    RETURN format('%L::%s', value, sql_type);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._segment_literal(text, text, text) IS
    'Internal: a segment filter value as a quoted literal cast to the column type, after checking the type accepts it.';

-- Compiles one segment filter node into a SQL boolean expression over the aliases in p_fields
-- (a jsonb object: field reference -> {"sql": qualified column, "type": SQL type}).
CREATE FUNCTION kaireon_internal._segment_filter_sql(node jsonb, p_fields jsonb, depth integer DEFAULT 0) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_op        text;
    v_col       jsonb;
    v_parts     text[] := '{}';
    v_el        jsonb;
    v_value     jsonb;
    v_lit       text;
BEGIN
    IF depth > 32 THEN
        RAISE EXCEPTION 'segment filter nests deeper than 32 levels'
            USING ERRCODE = '22023', HINT = 'Flatten the filter.';
    END IF;
    IF jsonb_typeof(node) = 'array' THEN
        node := jsonb_build_object('all', node);
    END IF;
    IF jsonb_typeof(node) <> 'object' THEN
        RAISE EXCEPTION 'segment filter node must be an object, not %', jsonb_typeof(node)
            USING ERRCODE = '22023', HINT = 'Use {"field", "operator", "value"}, {"all": [...]}, {"any": [...]} or {"not": {...}}.';
    END IF;
    IF node ? 'all' OR node ? 'any' THEN
        v_op := CASE WHEN node ? 'all' THEN 'all' ELSE 'any' END;
        IF jsonb_typeof(node -> v_op) <> 'array' THEN
            RAISE EXCEPTION 'segment filter "%" must be an array', v_op USING ERRCODE = '22023',
                HINT = 'Write {"all": [filter, ...]}.';
        END IF;
        FOR v_el IN SELECT * FROM jsonb_array_elements(node -> v_op) LOOP
            v_parts := v_parts || kaireon_internal._segment_filter_sql(v_el, p_fields, depth + 1);
        END LOOP;
        IF cardinality(v_parts) = 0 THEN
            RETURN CASE v_op WHEN 'all' THEN 'true' ELSE 'false' END;
        END IF;
        RETURN '(' || array_to_string(v_parts, CASE v_op WHEN 'all' THEN ' AND ' ELSE ' OR ' END) || ')';
    END IF;
    IF node ? 'not' THEN
        RETURN '(NOT ' || kaireon_internal._segment_filter_sql(node -> 'not', p_fields, depth + 1) || ')';
    END IF;

    v_col := p_fields -> (node ->> 'field');
    IF v_col IS NULL THEN
        RAISE EXCEPTION 'segment filter field "%" is not a published field of the segment''s schemas', node ->> 'field'
            USING ERRCODE = '22023',
                  HINT = 'Use a field name of the base schema, or <schema name>.<field> for a joined schema.';
    END IF;
    v_op := node ->> 'operator';
    v_value := node -> 'value';
    IF v_op IN ('exists', 'not_exists') THEN
        RETURN format('(%s IS %sNULL)', v_col ->> 'sql', CASE v_op WHEN 'exists' THEN 'NOT ' ELSE '' END);
    END IF;
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RAISE EXCEPTION 'segment filter on "%" needs a value for operator "%"', node ->> 'field', coalesce(v_op, '(none)')
            USING ERRCODE = '22023', HINT = 'Add "value".';
    END IF;
    IF v_op IN ('in', 'not_in') THEN
        IF jsonb_typeof(v_value) <> 'array' OR jsonb_array_length(v_value) = 0 THEN
            RAISE EXCEPTION 'segment filter on "%" with operator "%" needs a non-empty array value', node ->> 'field', v_op
                USING ERRCODE = '22023', HINT = 'Write "value": ["a", "b"].';
        END IF;
        SELECT array_agg(kaireon_internal._segment_literal(node ->> 'field', e, v_col ->> 'type')) INTO v_parts
          FROM jsonb_array_elements_text(v_value) AS e;
        RETURN format('(%s %sIN (%s))', v_col ->> 'sql', CASE v_op WHEN 'not_in' THEN 'NOT ' ELSE '' END,
                      array_to_string(v_parts, ', '));
    END IF;
    IF jsonb_typeof(v_value) IN ('object', 'array') AND v_col ->> 'type' <> 'jsonb' THEN
        RAISE EXCEPTION 'segment filter on "%" needs a scalar value, not %', node ->> 'field', jsonb_typeof(v_value)
            USING ERRCODE = '22023', HINT = 'Compare with a string, number or boolean.';
    END IF;
    v_lit := CASE WHEN jsonb_typeof(v_value) = 'string' THEN v_value #>> '{}' ELSE v_value::text END;
    RETURN CASE
        WHEN v_op IN ('eq', 'neq', 'gt', 'gte', 'lt', 'lte') THEN
            format('(%s %s %s)', v_col ->> 'sql',
                   CASE v_op WHEN 'eq' THEN '=' WHEN 'neq' THEN 'IS DISTINCT FROM' WHEN 'gt' THEN '>'
                             WHEN 'gte' THEN '>=' WHEN 'lt' THEN '<' ELSE '<=' END,
                   kaireon_internal._segment_literal(node ->> 'field', v_lit, v_col ->> 'type'))
        WHEN v_op = 'contains' THEN
            CASE WHEN v_col ->> 'type' = 'jsonb' THEN format('(%s @> %L::jsonb)', v_col ->> 'sql', v_value::text)
                 ELSE format('(strpos(%s::text, %L) > 0)', v_col ->> 'sql', v_lit) END
        WHEN v_op = 'starts_with' THEN format('starts_with(%s::text, %L)', v_col ->> 'sql', v_lit)
        ELSE kaireon_internal._segment_bad_operator(node ->> 'field', v_op)
    END;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._segment_filter_sql(jsonb, jsonb, integer) IS
    'Internal: compiles a segment filter (array = all; {"all"|"any": [...]}, {"not": f}, {"field", "operator", "value"}) into SQL, quoting every value as a literal of the column''s type.';

CREATE FUNCTION kaireon_internal._segment_bad_operator(field text, op text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'segment filter on "%" has unknown operator "%"', field, coalesce(op, '(none)')
        USING ERRCODE = '22023',
              HINT = 'Operators: eq, neq, gt, gte, lt, lte, in, not_in, contains, starts_with, exists, not_exists.';
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._segment_bad_operator(text, text) IS
    'Internal: raises the error for an unknown segment filter operator.';

CREATE FUNCTION kaireon.publish_segment(tenant_id text, segment_id text) RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := publish_segment.tenant_id;
    p_segment   text := publish_segment.segment_id;
    seg         kaireon.segments;
    base        kaireon.data_schemas;
    v_nsp       text;
    v_view      text;
    v_pk_name   name;
    v_join_type text;
    v_fields    jsonb := '{}';
    v_from      text;
    v_join      jsonb;
    v_other     kaireon.data_schemas;
    v_sj        kaireon.schema_joins;
    v_alias     text;
    v_n         integer := 0;
    v_where     text;
    v_count     bigint;
BEGIN
    IF p_tenant IS NULL OR p_segment IS NULL THEN
        RAISE EXCEPTION 'tenant_id and segment_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the id of a kaireon.segments row.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);

    SELECT * INTO seg FROM kaireon.segments s WHERE s.tenant_id = p_tenant AND s.id = p_segment FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'segment "%" does not exist for tenant "%"', p_segment, p_tenant
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.segments first.';
    END IF;
    SELECT * INTO base FROM kaireon.data_schemas d WHERE d.tenant_id = p_tenant AND d.id = seg.base_schema_id;
    IF NOT FOUND OR base.status <> 'published' THEN
        RAISE EXCEPTION 'segment "%" needs a published base data schema', seg.name
            USING ERRCODE = '22023', HINT = 'Set segments.base_schema_id and call kaireon.publish_data_schema first.';
    END IF;
    v_nsp := kaireon_internal._claim_tenant_schema(p_tenant);
    IF to_regclass(format('%I.%I', v_nsp, base.table_name)) IS NULL THEN
        RAISE EXCEPTION 'data schema "%" is marked published but its table %.% is missing', base.name, v_nsp, base.table_name
            USING ERRCODE = '55000', HINT = 'Call kaireon.publish_data_schema again.';
    END IF;
    v_view := 'seg_' || left(regexp_replace(lower(p_segment), '[^a-z0-9]', '_', 'g'), 40);
    IF EXISTS (SELECT 1 FROM kaireon.segments s
               WHERE s.tenant_id = p_tenant AND s.id <> p_segment AND s.view_name = v_view) THEN
        RAISE EXCEPTION 'segment view name "%" is already used by another segment', v_view
            USING ERRCODE = '23505', HINT = 'Segment ids must differ in their first 40 characters (after replacing non-alphanumerics with _).';
    END IF;

    -- The key column as the table has it (the primary key fixed at first publish).
    SELECT a.attname INTO v_pk_name FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1]
     WHERE i.indrelid = format('%I.%I', v_nsp, base.table_name)::regclass AND i.indisprimary;
    IF v_pk_name IS NULL THEN
        RAISE EXCEPTION 'table %.% has no primary key', v_nsp, base.table_name
            USING ERRCODE = '55000', HINT = 'Tables of data schemas are created by kaireon.publish_data_schema with one.';
    END IF;
    -- Field references: plain names for the base schema, <schema>.<field> for joined ones.
    SELECT v_fields || coalesce(jsonb_object_agg(sf.name, jsonb_build_object(
               'sql', format('b.%I', sf.name), 'type', kaireon_internal._field_sql_type(sf.data_type, sf.length, sf.precision, sf.scale))), '{}')
      INTO v_fields
      FROM kaireon.schema_fields sf
     WHERE sf.tenant_id = p_tenant AND sf.schema_id = base.id AND sf.published_at IS NOT NULL;
    v_from := format('%I.%I b', v_nsp, base.table_name);

    FOR v_join IN SELECT * FROM jsonb_array_elements(seg.joins) LOOP
        v_n := v_n + 1;
        v_alias := 'j' || v_n;
        SELECT * INTO v_other FROM kaireon.data_schemas d
         WHERE d.tenant_id = p_tenant AND d.id = v_join ->> 'schemaId' AND d.status = 'published';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'segment join % names no published data schema (%)', v_n, coalesce(v_join ->> 'schemaId', '(missing schemaId)')
                USING ERRCODE = '22023', HINT = 'Each join is {"schemaId": "<published data schema id>"}.';
        END IF;
        SELECT * INTO v_sj FROM kaireon.schema_joins j
         WHERE j.tenant_id = p_tenant AND j.primary_schema_id = base.id AND j.foreign_schema_id = v_other.id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no schema join from "%" to "%"', base.name, v_other.name
                USING ERRCODE = '22023', HINT = 'Insert a kaireon.schema_joins row between the two schemas.';
        END IF;
        v_join_type := coalesce(v_join ->> 'type', v_sj.join_type);
        IF v_join_type NOT IN ('inner', 'left') THEN
            RAISE EXCEPTION 'segment join % has unknown type "%"', v_n, v_join_type
                USING ERRCODE = '22023', HINT = 'A join type is "left" or "inner".';
        END IF;
        v_from := v_from || format(' %s JOIN %I.%I %s ON %s.tenant_id = b.tenant_id AND %s.%I = b.%I',
                                   upper(v_join_type), v_nsp, v_other.table_name, v_alias,
                                   v_alias, v_alias, kaireon_internal._check_identifier('join key', v_sj.foreign_key, 63),
                                   kaireon_internal._check_identifier('join key', v_sj.primary_key, 63));
        SELECT v_fields || coalesce(jsonb_object_agg(v_other.name || '.' || sf.name, jsonb_build_object(
                   'sql', format('%s.%I', v_alias, sf.name), 'type', kaireon_internal._field_sql_type(sf.data_type, sf.length, sf.precision, sf.scale))), '{}')
          INTO v_fields
          FROM kaireon.schema_fields sf
         WHERE sf.tenant_id = p_tenant AND sf.schema_id = v_other.id AND sf.published_at IS NOT NULL;
    END LOOP;

    v_where := kaireon_internal._segment_filter_sql(seg.filters, v_fields);
    IF to_regclass(format('%I.%I', v_nsp, v_view)) IS NOT NULL THEN
        EXECUTE format('DROP VIEW %I.%I', v_nsp, v_view);
    END IF;
    -- The view names its tenant, so rows of any other tenant never match whoever reads it.
    EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT DISTINCT b.tenant_id, b.%I::text AS customer_id, b.%I AS customer_key FROM %s WHERE b.tenant_id = %L AND %s',
                   v_nsp, v_view, v_pk_name, v_pk_name, v_from, p_tenant, v_where);
    EXECUTE format('COMMENT ON VIEW %I.%I IS %L', v_nsp, v_view,
                   format('kaireon segment %s (%s) of tenant %s', seg.name, p_segment, p_tenant));
    PERFORM kaireon_internal._apply_role_grants(v_nsp, v_view);
    EXECUTE format('SELECT count(*) FROM %I.%I', v_nsp, v_view) INTO v_count;

    UPDATE kaireon.segments s
       SET view_name = v_view, status = 'published', published_at = now(), customer_count = v_count
     WHERE s.tenant_id = p_tenant AND s.id = p_segment;
    RETURN format('%I.%I', v_nsp, v_view);
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_segment(text, text) IS
    'Compiles a segment''s filters and joins into the view kaireon_t_<slug>.seg_<id prefix> (columns tenant_id, customer_id, customer_key), records its size, and returns the view name. Caller must act for the tenant.';

CREATE FUNCTION kaireon_internal._segment_view(p_tenant text, p_segment text) RETURNS text
    LANGUAGE plpgsql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_view      text;
BEGIN
    IF p_tenant IS NULL OR p_segment IS NULL THEN
        RAISE EXCEPTION 'tenant_id and segment_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and a segment id.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.view_name INTO v_view FROM kaireon.segments s
     WHERE s.tenant_id = p_tenant AND s.id = p_segment AND s.status = 'published';
    IF v_view IS NULL THEN
        RAISE EXCEPTION 'segment "%" of tenant "%" is not published', p_segment, p_tenant
            USING ERRCODE = '42704', HINT = 'Call kaireon.publish_segment first.';
    END IF;
    RETURN format('%I.%I', kaireon_internal._tenant_data_schema(p_tenant), kaireon_internal._check_identifier('segment view', v_view, 63));
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._segment_view(text, text) IS
    'Internal: the qualified view name of a published segment, after checking the caller may act for the tenant (runs as owner to read the segment and tenant rows; the caller then reads the view with its own privileges).';

CREATE FUNCTION kaireon.segment_members(tenant_id text, segment_id text) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format('SELECT customer_id FROM %s ORDER BY customer_id',
                                kaireon_internal._segment_view(segment_members.tenant_id, segment_members.segment_id));
END
$fn$;
COMMENT ON FUNCTION kaireon.segment_members(text, text) IS
    'Customer ids in a published segment, in order. Runs with the caller''s privileges (row level security applies); the caller must act for the tenant.';

CREATE FUNCTION kaireon.is_segment_member(tenant_id text, segment_id text, customer_id text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_member    boolean;
BEGIN
    IF is_segment_member.customer_id IS NULL THEN
        RAISE EXCEPTION 'customer_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the customer id to test.';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE customer_id = $1)',
                   kaireon_internal._segment_view(is_segment_member.tenant_id, is_segment_member.segment_id))
       INTO v_member USING is_segment_member.customer_id;
    RETURN v_member;
END
$fn$;
COMMENT ON FUNCTION kaireon.is_segment_member(text, text, text) IS
    'True when the customer is in the published segment. Runs with the caller''s privileges (row level security applies); the caller must act for the tenant.';
