-- kaireon install script, part 47: identity resolution (docs/identity.md). recommend and
-- respond decide for the canonical customer of the identifier they are given (an e-mail
-- address, a device id, a session id, ...: kaireon.identity_links, src/decision/identity.c);
-- kaireon.link_identity links an identifier to a customer and moves the identifier's history
-- to it. It follows the tables it reads and writes: 20_customer.sql (identity_links and the
-- customer's facts) and 45_decisioning_api.sql (config_versions, decision_locks).

-- A decision looks an identifier up by its value under any type: one probe of this index.
CREATE INDEX identity_links_value_idx ON kaireon.identity_links (tenant_id, identifier_value);

-- The first link of a tenant turns identity resolution on for its decisions (a flag of the
-- compiled configuration: the trigger renews the tenant's configuration version only then).
CREATE FUNCTION kaireon_internal._identity_links_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_identity_links_changed'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._identity_links_changed() IS
    'Internal: AFTER INSERT and UPDATE statement trigger of identity_links: a tenant''s first link sets config_versions.identity_links and renews its configuration version, so that its decisions resolve identifiers; later links change nothing (src/config/invalidate.c).';
CREATE TRIGGER identity_links_changed_ins AFTER INSERT ON kaireon.identity_links
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._identity_links_changed();
CREATE TRIGGER identity_links_changed_upd AFTER UPDATE ON kaireon.identity_links
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._identity_links_changed();

-- The kaireon tables that hold a customer's rows, found from the catalog (a table added later
-- with a customer_id column is covered without a change here): every table with tenant_id and
-- customer_id (partitioned tables as a whole, detached partitions on their own), and
-- consent_records, whose customer is subject_id. Data subject requests and link_identity read
-- it. (PL/pgSQL: Citus plans no parameterised query of a SQL function.)
CREATE FUNCTION kaireon_internal._customer_tables()
    RETURNS TABLE (label text, relation text, key_column text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY
    SELECT c.relname::text, format('kaireon.%I', c.relname), 'customer_id'
      FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'customer_id' AND NOT a.attisdropped)
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
    UNION ALL
    SELECT 'consent_records', 'kaireon.consent_records', 'subject_id'
     ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._customer_tables() IS
    'Internal: the kaireon tables holding a customer''s rows (every table with tenant_id and customer_id, and consent_records by subject_id): label, relation and the column naming the customer.';

-- Moves the rows of one identifier to a customer in every table of _customer_tables but
-- decision_locks (link_identity marks those) and the records found by another key, which keep
-- the id they were made for: decision_traces, model_shadow_scores and campaign_decisions
-- (records of decisions), journey_enrollments (by journey), and geofence_presences
-- (location_event keeps presence per the id it is given: moved, the identifier's next location
-- would enter its fences again). Trigger rule firings move: a rule's cooldown per customer
-- counts the person's firings under either id.
-- Where a unique key would make the identifier's row collide with one of the customer's, the
-- customer's row is kept (its experiment arm, its scores) and the identifier's is dropped;
-- interaction summaries are added up first. Returns the rows moved per table (tables without
-- any left out).
CREATE FUNCTION kaireon_internal._move_customer_rows(p_tenant text, p_from text, p_to text) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    t           record;
    u           record;
    v_match     text;
    v_n         bigint;
    v_now       timestamptz := now();
    v_moved     jsonb := '{}';
BEGIN
    -- the identifier's summary counts added to the customer's rows of the same key
    UPDATE kaireon.interaction_summaries c
       SET impressions = c.impressions + x.impressions, positive = c.positive + x.positive,
           negative = c.negative + x.negative, converts = c.converts + x.converts,
           total_value = c.total_value + x.total_value, updated_at = v_now
      FROM kaireon.interaction_summaries x
     WHERE c.tenant_id = p_tenant AND x.tenant_id = p_tenant AND c.customer_id = p_to AND x.customer_id = p_from
       AND c.definition_id IS NOT DISTINCT FROM x.definition_id AND c.period_type = x.period_type
       AND c.period_key = x.period_key AND c.offer_id IS NOT DISTINCT FROM x.offer_id
       AND c.creative_id IS NOT DISTINCT FROM x.creative_id AND c.channel_id IS NOT DISTINCT FROM x.channel_id
       AND c.dimension_key = x.dimension_key;
    FOR t IN SELECT * FROM kaireon_internal._customer_tables() c
              WHERE c.label NOT IN ('decision_locks', 'decision_traces', 'model_shadow_scores', 'campaign_decisions',
                                    'journey_enrollments', 'geofence_presences') LOOP
        -- the unique keys naming the customer (read apart: Citus joins no catalog with its tables);
        -- a partial one's predicate, unqualified, names x outside the EXISTS and y inside it
        FOR u IN SELECT i.indnullsnotdistinct AS nulls_equal,
                        coalesce(pg_get_expr(i.indpred, i.indrelid), 'true') AS pred,
                        ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS k (attnum)
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                               WHERE a.attname NOT IN ('tenant_id', t.key_column)) AS cols
                   FROM pg_index i
                  WHERE i.indrelid = t.relation::regclass AND i.indisunique
                    AND (SELECT a.attnum FROM pg_attribute a
                          WHERE a.attrelid = i.indrelid AND a.attname = t.key_column) = ANY (i.indkey::int2[]) LOOP
            SELECT coalesce(string_agg(format('y.%1$I %2$s x.%1$I', col,
                                              CASE WHEN u.nulls_equal THEN 'IS NOT DISTINCT FROM' ELSE '=' END),
                                       ' AND '), 'true')
              INTO v_match FROM unnest(u.cols) AS col;
            EXECUTE format('DELETE FROM %1$s x WHERE x.tenant_id = $1 AND x.%2$I = $2 AND (%4$s) AND EXISTS '
                           '(SELECT 1 FROM %1$s y WHERE y.tenant_id = $1 AND y.%2$I = $3 AND %3$s AND (%4$s))',
                           t.relation, t.key_column, v_match, u.pred)
                USING p_tenant, p_from, p_to;
        END LOOP;
        EXECUTE format('UPDATE %s x SET %I = $3 WHERE x.tenant_id = $1 AND x.%I = $2',
                       t.relation, t.key_column, t.key_column)
            USING p_tenant, p_from, p_to;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n > 0 THEN
            v_moved := v_moved || jsonb_build_object(t.label, v_n);
        END IF;
    END LOOP;
    RETURN v_moved;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._move_customer_rows(text, text, text) IS
    'Internal (kaireon.link_identity): moves one tenant''s rows of an identifier to a customer in every table of _customer_tables but decision_locks; on a unique key the customer''s row wins, summaries are added up; returns the rows moved per table.';

CREATE FUNCTION kaireon.link_identity(tenant_id text, identifier_type text, identifier_value text,
                                      canonical_id text, confidence double precision DEFAULT 1)
    RETURNS jsonb
    LANGUAGE plpgsql
    -- (as the data subject requests: it rewrites facts of the tenant, which it names everywhere)
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    p_tenant    text := link_identity.tenant_id;
    p_type      text := link_identity.identifier_type;
    p_value     text := link_identity.identifier_value;
    p_canonical text := link_identity.canonical_id;
    v_types     text[] := ARRAY(SELECT kaireon_internal._type_names('identifier'));
    v_roots     text[];
    v_root      text;
    v_other     text;
    v_link      text;
    v_relinked  bigint;
    v_moved     jsonb;
    v_now       timestamptz := now();
    v_id        text;
BEGIN
    IF p_tenant IS NULL OR p_type IS NULL OR p_value IS NULL OR p_canonical IS NULL OR confidence IS NULL THEN
        RAISE EXCEPTION '% must not be null',
              CASE WHEN p_tenant IS NULL THEN 'tenant_id' WHEN p_type IS NULL THEN 'identifier_type'
                   WHEN p_value IS NULL THEN 'identifier_value' WHEN p_canonical IS NULL THEN 'canonical_id'
                   ELSE 'confidence' END
            USING ERRCODE = '22004',
                  HINT = 'Pass the tenant, the identifier''s type and value, and the id of the customer it belongs to.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);
    IF NOT p_type = ANY (v_types) THEN
        RAISE EXCEPTION 'identifier_type "%" is not an identifier type', p_type
            USING ERRCODE = '22023', HINT = format('Identifier types: %s.', array_to_string(v_types, ', '));
    END IF;
    IF p_value !~ '\S' OR length(p_value) > 500 THEN
        RAISE EXCEPTION 'identifier_value "%" must be 1 to 500 characters, not blank', left(p_value, 100)
            USING ERRCODE = '22023', HINT = 'Pass the identifier as the requests give it (an e-mail address, a session id, ...).';
    END IF;
    IF p_canonical !~ '\S' OR length(p_canonical) > 500 THEN
        RAISE EXCEPTION 'canonical_id "%" must be 1 to 500 characters, not blank', left(p_canonical, 100)
            USING ERRCODE = '22023', HINT = 'Pass the id of the known customer.';
    END IF;
    IF NOT (confidence BETWEEN 0 AND 1) THEN
        RAISE EXCEPTION 'confidence % must be between 0 and 1', confidence
            USING ERRCODE = '22023', HINT = 'Pass how sure the link is, from 0 to 1 (1 for a sign-in).';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.tenants t WHERE t.id = p_tenant) THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant
            USING ERRCODE = '42704', HINT = 'Pass the id of a row of kaireon.tenants.';
    END IF;

    -- no chains: a canonical id that is itself a linked identifier stands for its customer
    v_roots := ARRAY(SELECT DISTINCT l.canonical_id FROM kaireon.identity_links l
                      WHERE l.tenant_id = p_tenant AND l.identifier_value = p_canonical ORDER BY 1);
    IF cardinality(v_roots) > 1 THEN
        RAISE EXCEPTION 'canonical_id "%" is itself linked to more than one customer', p_canonical
            USING ERRCODE = '22023', HINT = 'Link to one of those customers instead.';
    END IF;
    v_root := coalesce(v_roots[1], p_canonical);
    IF v_root = p_value THEN
        RAISE EXCEPTION 'identifier "%" would be linked to itself%', p_value,
              CASE WHEN v_root <> p_canonical THEN format(' (canonical_id "%s" is linked to it)', p_canonical) ELSE '' END
            USING ERRCODE = '22023', HINT = 'A customer id is its own canonical id: link another identifier to it.';
    END IF;
    -- an identifier belongs to one customer: its history went to the first one it was linked to
    SELECT l.canonical_id INTO v_other FROM kaireon.identity_links l
     WHERE l.tenant_id = p_tenant AND l.identifier_value = p_value AND l.canonical_id <> v_root LIMIT 1;
    IF v_other IS NOT NULL THEN
        RAISE EXCEPTION 'identifier "%" is already linked to customer "%"', p_value, v_other
            USING ERRCODE = '22023',
                  HINT = 'An identifier belongs to one customer. To merge the two customers, link the other customer''s id to this one.';
    END IF;

    -- the decision locks of both, in id order: decisions for either wait until commit, and the
    -- identifier's row names its customer (a decision that resolved it before the link
    -- committed looks it up again: src/decision/identity.c)
    FOREACH v_id IN ARRAY ARRAY(SELECT x FROM unnest(ARRAY[p_value, v_root]) AS x ORDER BY x) LOOP
        IF v_id = p_value THEN
            INSERT INTO kaireon.decision_locks AS l (tenant_id, customer_id, decisions, last_decision_at, merged_into)
            VALUES (p_tenant, p_value, 0, v_now, v_root)
            ON CONFLICT (tenant_id, customer_id) DO UPDATE SET merged_into = EXCLUDED.merged_into;
        ELSE
            INSERT INTO kaireon.decision_locks AS l (tenant_id, customer_id, decisions, last_decision_at)
            VALUES (p_tenant, v_root, 0, v_now)
            ON CONFLICT (tenant_id, customer_id) DO UPDATE SET decisions = l.decisions;
        END IF;
    END LOOP;
    -- a concurrent link of either committed while this one waited for their locks (READ
    -- COMMITTED: the checks above did not see it): the root or the identifier's customer may
    -- have changed, and going on would store a chain or a second customer for the identifier
    -- and move the rows under a merged id. Checked again with a fresh snapshot: refused as a
    -- serialization failure, which the caller retries.
    IF ARRAY(SELECT DISTINCT l.canonical_id FROM kaireon.identity_links l
              WHERE l.tenant_id = p_tenant AND l.identifier_value = p_canonical ORDER BY 1) IS DISTINCT FROM v_roots
       OR EXISTS (SELECT 1 FROM kaireon.identity_links l
                   WHERE l.tenant_id = p_tenant AND l.identifier_value = p_value AND l.canonical_id <> v_root) THEN
        RAISE EXCEPTION 'a link of "%" or "%" of tenant "%" committed while this one waited for it', p_value, p_canonical, p_tenant
            USING ERRCODE = '40001', HINT = 'Call kaireon.link_identity again: it links to the customer as it is now.';
    END IF;

    SELECT l.id INTO v_link FROM kaireon.identity_links l
     WHERE l.tenant_id = p_tenant AND l.identifier_type = p_type AND l.identifier_value = p_value;
    IF v_link IS NULL THEN
        INSERT INTO kaireon.identity_links (tenant_id, canonical_id, identifier_type, identifier_value, confidence)
        VALUES (p_tenant, v_root, p_type, p_value, confidence)
        RETURNING id INTO v_id;
    END IF;
    -- an identifier that was a customer itself: its own links name the customer now (no chains)
    UPDATE kaireon.identity_links l SET canonical_id = v_root, updated_at = v_now
     WHERE l.tenant_id = p_tenant AND l.canonical_id = p_value;
    GET DIAGNOSTICS v_relinked = ROW_COUNT;
    -- its history, caps' units, suppressions, consent, ... go to the customer
    v_moved := kaireon_internal._move_customer_rows(p_tenant, p_value, v_root);
    RETURN jsonb_build_object('linkId', coalesce(v_link, v_id), 'tenantId', p_tenant, 'identifierType', p_type,
                              'identifierValue', p_value, 'canonicalId', v_root, 'created', v_link IS NULL,
                              'relinked', v_relinked, 'moved', v_moved);
END
$fn$;
COMMENT ON FUNCTION kaireon.link_identity(text, text, text, text, double precision) IS
    'Links an identifier (identifier_type: email, phone, session, device, cookie, customer_id or external) to a known customer and, in the same transaction, moves the identifier''s rows (interaction history, impressions, suppressions, consent, trigger firings, summaries, assignments, ...) to the customer (decision traces, shadow scores, campaign decisions, journey enrolments and geofence presences keep the id they were made for), holding both customers'' decision locks, so caps stay exact across the merge; a canonical id that is itself linked stands for its customer (no chains), the links of an identifier that was a customer name the new one. Again with the same link: moves what is left, creates nothing. Bad input, a self link or an identifier linked to another customer: 22023, nothing written; a concurrent link of either that committed while it waited: 40001 (call it again). Returns {linkId, tenantId, identifierType, identifierValue, canonicalId, created, relinked, moved: {table: rows}}. See docs/identity.md.';
