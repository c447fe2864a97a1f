-- kaireon install script, part 83: data subject requests (docs/retention.md, "Data subject
-- requests"). kaireon.dsar_export returns every row of one subject (a customer of a tenant),
-- under its id or an identifier linked to it (kaireon_internal._dsar_subject_ids), as one jsonb document; kaireon.dsar_delete erases them, except the data classes under a
-- legal hold. Both are recorded in kaireon.dsar_requests. The tables are found from the
-- catalog, so a table added later with a customer_id column is covered without a change here.
-- Audit rows are not touched: the audit chain records configuration changes, which carry no
-- customer data, so it still verifies after an erasure.

CREATE TABLE kaireon.dsar_requests (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    request_type            text NOT NULL
                            CHECK (request_type IN ('export', 'delete', 'rectify')),
    subject_id              text NOT NULL,
    subject_type            text NOT NULL DEFAULT 'customer',
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'processing', 'completed', 'failed',
                                              'rejected')),
    requested_by            text NOT NULL,
    reason                  text,
    result                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(result) = 'object'),
    error                   text,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.dsar_requests IS
    'DsarRequest: data-subject access request (export, delete or rectify the data of one subject, by default a customer) and its processing status and result.';

CREATE INDEX dsar_requests_subject_idx
    ON kaireon.dsar_requests (tenant_id, subject_type, subject_id);
CREATE INDEX dsar_requests_status_idx
    ON kaireon.dsar_requests (tenant_id, status, created_at);

-- The ids one subject's rows are under in a tenant: the subject's own, the identifiers linked to
-- it (identity_links; link_identity leaves traces, outbox events and the like under them) and
-- the ids whose decision lock link_identity merged into it.
CREATE FUNCTION kaireon_internal._dsar_subject_ids(p_tenant text, p_subject text) RETURNS text[]
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function)
    RETURN ARRAY(SELECT DISTINCT i FROM (
                     SELECT p_subject AS i
                     UNION ALL
                     SELECT l.identifier_value FROM kaireon.identity_links l
                      WHERE l.tenant_id = p_tenant AND l.canonical_id = p_subject
                     UNION ALL
                     SELECT d.customer_id FROM kaireon.decision_locks d
                      WHERE d.tenant_id = p_tenant AND d.merged_into = p_subject) x
                  WHERE i IS NOT NULL ORDER BY i);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_subject_ids(text, text) IS
    'Internal: the ids a data subject''s rows are under in a tenant: the subject id, the identifier values linked to it (identity_links.canonical_id) and the customer ids whose decision lock was merged into it (decision_locks.merged_into).';

-- Where one tenant's subject rows are: a label, the relation, the predicate (with $1 the ids
-- the subject's rows are under, kaireon_internal._dsar_subject_ids, $2 the ids of the
-- subject's interactions) and the retention data class whose legal hold keeps them.
CREATE FUNCTION kaireon_internal._dsar_targets(p_tenant text)
    RETURNS TABLE (label text, relation text, predicate text, data_class text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_nsp       text[];
    v_table     text[];
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function; the catalogs and the
    -- tenant's rows are read by separate queries, as Citus joins no catalog with its tables)
    -- The tenant's customer data tables: every schema of entity type customer, whatever its
    -- status (one back in draft, or archived, keeps its table and its rows); the ones with a
    -- table are kept below.
    SELECT coalesce(array_agg(s.schema_name::text ORDER BY d.table_name), '{}'),
           coalesce(array_agg(d.table_name ORDER BY d.table_name), '{}')
      INTO v_nsp, v_table
      FROM kaireon.data_schemas d
      JOIN kaireon.tenants t ON t.id = d.tenant_id
      JOIN kaireon.tenant_schemas s ON s.schema_name = 'kaireon_t_' || t.slug AND s.owner_tenant_id = t.id
     WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND d.entity_type = 'customer';
    RETURN QUERY
    -- kaireon tables with the customer's rows (partitioned tables as a whole; consent_records
    -- by subject_id: kaireon_internal._customer_tables)
    SELECT c.label, c.relation, format('x.%I = ANY ($1)', c.key_column),
           CASE c.label WHEN 'interaction_history' THEN 'interactions' WHEN 'impressions' THEN 'interactions'
                        WHEN 'decision_locks' THEN 'interactions' WHEN 'decision_traces' THEN 'decisions'
                        WHEN 'model_shadow_scores' THEN 'decisions' WHEN 'campaign_decisions' THEN 'decisions'
                        WHEN 'interaction_summaries' THEN 'summaries' WHEN 'metric_values' THEN 'metrics'
                        WHEN 'suppressions' THEN 'suppressions'
                        -- a monthly partition retention detached (an archive): still interactions
                        ELSE CASE WHEN c.label ~ '^interaction_history_p\d{4}_\d{2}$' THEN 'interactions' END END
      FROM kaireon_internal._customer_tables() c
    UNION ALL
    -- kaireon tables that point at the subject's interactions (idempotency keys, deliveries);
    -- policy_snapshots only names the first interaction decided under a policy version
    SELECT c.relname::text, format('kaireon.%I', c.relname), 'x.interaction_id = ANY ($2)',
           CASE c.relname WHEN 'respond_idempotency' THEN 'interactions' END
      FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname <> 'policy_snapshots'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'interaction_id' AND NOT a.attisdropped)
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'customer_id' AND NOT a.attisdropped)
    UNION ALL
    SELECT * FROM (VALUES
        ('identity_links', 'kaireon.identity_links',
         '(x.canonical_id = ANY ($1) OR (x.identifier_type = ''customer_id'' AND x.identifier_value = ANY ($1)))', NULL),
        ('outbox_events', 'kaireon.outbox_events', 'x.payload ->> ''customerId'' = ANY ($1)', 'outbox'),
        ('dead_letter_events', 'kaireon.dead_letter_events', 'x.payload ->> ''customerId'' = ANY ($1)', 'outbox')
    ) AS v (label, relation, predicate, data_class)
    UNION ALL
    -- the tenant's customer data tables that exist, by the key column as the table has it (the
    -- primary key (tenant_id, key) fixed at first publish; a draft may rename the field)
    SELECT format('%s.%s', ds.nsp, ds.tbl), format('%I.%I', ds.nsp, ds.tbl),
           format('x.%I::text = ANY ($1)', a.attname::text), NULL::text
      FROM (SELECT DISTINCT u.nsp, u.tbl FROM unnest(v_nsp, v_table) AS u (nsp, tbl)) ds
      JOIN pg_index i ON i.indrelid = to_regclass(format('%I.%I', ds.nsp, ds.tbl)) AND i.indisprimary
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1]
     WHERE to_regclass(format('%I.%I', ds.nsp, ds.tbl)) IS NOT NULL
     ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_targets(text) IS
    'Internal: where a tenant''s data subject (customer) rows are: every kaireon table with a customer_id column, the tables pointing at the subject''s interactions, consent records, identity links, outbox events and dead letters about the subject, and every existing customer data table of the tenant (whatever its schema''s status; by the table''s key column); with the retention data class whose legal hold keeps them.';

-- How both requests start: the checks, then the dsar_requests row (processing); returns its id
-- and the ids of the subject's interactions (under any of its ids), archived ones included.
CREATE FUNCTION kaireon_internal._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text,
                                    p_requested_by text, p_reason text,
                                    OUT request_id text, OUT interaction_ids text[])
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_archive   text;
    v_ids       text[];
    v_subjects  text[];
BEGIN
    IF p_tenant IS NULL OR p_subject IS NULL THEN
        RAISE EXCEPTION 'tenant_id and subject_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the customer id of the data subject.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);
    IF p_subject_type IS DISTINCT FROM 'customer' THEN
        RAISE EXCEPTION 'subject_type "%" is not supported', coalesce(p_subject_type, 'null')
            USING ERRCODE = '22023', HINT = 'Data subject requests are about customers (subject_type => ''customer'').';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.tenants t WHERE t.id = p_tenant) THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant
            USING ERRCODE = '42704', HINT = 'Pass the id of a row of kaireon.tenants.';
    END IF;
    v_subjects := kaireon_internal._dsar_subject_ids(p_tenant, p_subject);
    interaction_ids := ARRAY(SELECT h.id FROM kaireon.interaction_history h
                              WHERE h.tenant_id = p_tenant AND h.customer_id = ANY (v_subjects));
    -- and those of the monthly partitions retention detached (archives, no longer under
    -- interaction_history), so the rows pointing at them (deliveries, idempotency keys) go too
    FOR v_archive IN SELECT c.relation FROM kaireon_internal._customer_tables() c
                      WHERE c.label ~ '^interaction_history_p\d{4}_\d{2}$' ORDER BY c.label LOOP
        EXECUTE format('SELECT coalesce(array_agg(x.id ORDER BY x.id), ''{}'') FROM %s x '
                       ' WHERE x.tenant_id = $1 AND x.customer_id = ANY ($2)', v_archive)
            INTO v_ids USING p_tenant, v_subjects;
        interaction_ids := interaction_ids || v_ids;
    END LOOP;
    INSERT INTO kaireon.dsar_requests (tenant_id, request_type, subject_id, subject_type, status, requested_by, reason)
    VALUES (p_tenant, p_request_type, p_subject, p_subject_type, 'processing',
            coalesce(p_requested_by, nullif(current_setting('kaireon.user_id', true), ''), session_user::text), p_reason)
    RETURNING id INTO request_id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_start(text, text, text, text, text, text) IS
    'Internal: checks a data subject request (arguments, tenant access, subject type, tenant), records it in dsar_requests as processing, and returns its id and the ids of the subject''s interactions (under any id of kaireon_internal._dsar_subject_ids; in interaction_history and in the monthly partitions retention detached).';

CREATE FUNCTION kaireon.dsar_export(tenant_id text, subject_id text, requested_by text DEFAULT NULL,
                                    reason text DEFAULT NULL, subject_type text DEFAULT 'customer')
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := dsar_export.tenant_id;
    v_ids       text[];
    v_subjects  text[];
    v_request   text;
    t           record;
    v_rows      jsonb;
    v_n         bigint;
    v_data      jsonb := '{}';
    v_counts    jsonb := '{}';
BEGIN
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.request_id, s.interaction_ids INTO v_request, v_ids
      FROM kaireon_internal._dsar_start(p_tenant, subject_id, subject_type, 'export', requested_by, reason) s;
    v_subjects := kaireon_internal._dsar_subject_ids(p_tenant, subject_id);
    FOR t IN SELECT * FROM kaireon_internal._dsar_targets(p_tenant) LOOP
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), ''[]''), count(*) '
                       '  FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
            INTO v_rows, v_n USING v_subjects, v_ids, p_tenant;
        IF v_n > 0 THEN
            v_data := v_data || jsonb_build_object(t.label, v_rows);
            v_counts := v_counts || jsonb_build_object(t.label, v_n);
        END IF;
    END LOOP;
    UPDATE kaireon.dsar_requests r
       SET status = 'completed', completed_at = now(),
           result = jsonb_build_object('tables', v_counts,
                                       'rows', (SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(v_counts)))
     WHERE r.tenant_id = p_tenant AND r.id = v_request;
    RETURN jsonb_build_object('requestId', v_request, 'tenantId', p_tenant, 'subjectId', subject_id,
                              'subjectType', subject_type, 'exportedAt', now(), 'data', v_data);
END
$fn$;
COMMENT ON FUNCTION kaireon.dsar_export(text, text, text, text, text) IS
    'Data subject access / portability: every row of one customer of a tenant (kaireon_internal._dsar_targets: interactions, impressions, traces, summaries, metric values, scores, suppressions, consent, identity links, assignments, journeys, outbox events, the customer data tables, ...) as one document {requestId, tenantId, subjectId, subjectType, exportedAt, data: {table: [rows]}}; recorded in dsar_requests with the row counts.';

CREATE FUNCTION kaireon.dsar_delete(tenant_id text, subject_id text, requested_by text DEFAULT NULL,
                                    reason text DEFAULT NULL, subject_type text DEFAULT 'customer')
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := dsar_delete.tenant_id;
    v_ids       text[];
    v_subjects  text[];
    v_request   text;
    v_held      text[];
    t           record;
    v_n         bigint;
    v_deleted   jsonb := '{}';
    v_kept      jsonb := '{}';
    v_result    jsonb;
BEGIN
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.request_id, s.interaction_ids INTO v_request, v_ids
      FROM kaireon_internal._dsar_start(p_tenant, subject_id, subject_type, 'delete', requested_by, reason) s;
    v_subjects := kaireon_internal._dsar_subject_ids(p_tenant, subject_id);
    v_held := ARRAY(SELECT p.data_class FROM kaireon.retention_policies() p
                     WHERE p.tenant_id = p_tenant AND p.legal_hold ORDER BY 1);
    FOR t IN SELECT * FROM kaireon_internal._dsar_targets(p_tenant) LOOP
        IF t.data_class = ANY (v_held) THEN
            EXECUTE format('SELECT count(*) FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
                INTO v_n USING v_subjects, v_ids, p_tenant;
            IF v_n > 0 THEN
                v_kept := v_kept || jsonb_build_object(t.label, v_n);
            END IF;
        ELSE
            EXECUTE format('DELETE FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
                USING v_subjects, v_ids, p_tenant;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            IF v_n > 0 THEN
                v_deleted := v_deleted || jsonb_build_object(t.label, v_n);
            END IF;
        END IF;
    END LOOP;
    v_result := jsonb_build_object('deleted', v_deleted, 'keptUnderLegalHold', v_kept, 'legalHold', to_jsonb(v_held),
                                   'rows', (SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(v_deleted)));
    UPDATE kaireon.dsar_requests r
       SET status = 'completed', completed_at = now(), result = v_result
     WHERE r.tenant_id = p_tenant AND r.id = v_request;
    RETURN v_result || jsonb_build_object('requestId', v_request);
END
$fn$;
COMMENT ON FUNCTION kaireon.dsar_delete(text, text, text, text, text) IS
    'Data subject erasure: deletes every row of one customer of a tenant that kaireon.dsar_export would return, except those of data classes under a legal hold for the tenant (reported as keptUnderLegalHold); audit rows are not touched (they hold no customer data), so the audit chain still verifies. Recorded in dsar_requests; returns {deleted: {table: rows}, keptUnderLegalHold, legalHold, rows, requestId}.';
