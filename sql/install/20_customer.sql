-- kaireon install script, part 20: customer data schemas, segments, and the customer-scoped
-- fact tables (interaction history, summaries, impressions, scores, identity, consent).

CREATE TABLE kaireon.data_schemas (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    description             text,
    table_name              text NOT NULL GENERATED ALWAYS AS ('ds_' || name) STORED,
    entity_type             text NOT NULL DEFAULT 'customer' CHECK (entity_type IN ('customer', 'account', 'custom')),
    schema_type             text NOT NULL DEFAULT 'entity' CHECK (schema_type IN ('entity', 'event', 'lookup')),
    linked_schema_id        text,
    join_mapping            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(join_mapping) = 'object'),
    summary_columns         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(summary_columns) = 'array'),
    auto_enrich             boolean NOT NULL DEFAULT false,
    status                  text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, linked_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id)
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX ON kaireon.data_schemas (tenant_id, linked_schema_id);
COMMENT ON TABLE kaireon.data_schemas IS
    'DataSchema: an entity (customer, account, custom) whose rows live in the real table kaireon_t_<tenant slug>.ds_<name>, created by kaireon.publish_data_schema.';

CREATE TABLE kaireon.schema_fields (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    schema_id               text NOT NULL,
    name                    text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$' AND name <> 'tenant_id'),
    description             text,
    data_type               text NOT NULL
                            CHECK (data_type IN ('text', 'varchar', 'smallint', 'integer', 'bigint', 'numeric',
                                                 'real', 'double', 'boolean', 'date', 'timestamp',
                                                 'timestamptz', 'jsonb', 'uuid')),
    length                  integer CHECK (length BETWEEN 1 AND 10485760),
    precision               integer CHECK (precision BETWEEN 1 AND 1000),
    scale                   integer CHECK (scale BETWEEN 0 AND 1000),
    is_nullable             boolean NOT NULL DEFAULT true,
    is_primary_key          boolean NOT NULL DEFAULT false,
    is_unique               boolean NOT NULL DEFAULT false,
    is_predictor            boolean NOT NULL DEFAULT false,
    default_value           text,
    ordinal                 integer NOT NULL DEFAULT 0,
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, schema_id, name),
    FOREIGN KEY (tenant_id, schema_id) REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE CASCADE,
    CHECK (length IS NULL OR data_type = 'varchar'),
    CHECK ((precision IS NULL AND scale IS NULL) OR data_type = 'numeric'),
    CHECK (scale IS NULL OR (precision IS NOT NULL AND scale <= precision)),
    CHECK (NOT is_primary_key OR NOT is_nullable)
);
COMMENT ON TABLE kaireon.schema_fields IS
    'SchemaField: a typed column of a data schema; is_predictor exposes it to model training. Published fields become columns of the ds_ table.';

CREATE TABLE kaireon.schema_joins (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    primary_schema_id       text NOT NULL,
    primary_key             text NOT NULL,
    foreign_schema_id       text NOT NULL,
    foreign_key             text NOT NULL,
    join_type               text NOT NULL DEFAULT 'left' CHECK (join_type IN ('left', 'inner')),
    auto_enrich             boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, primary_schema_id, foreign_schema_id),
    FOREIGN KEY (tenant_id, primary_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, foreign_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.schema_joins (tenant_id, foreign_schema_id);
COMMENT ON TABLE kaireon.schema_joins IS
    'SchemaJoin: join between two data schemas (primary_key = foreign_key), used to widen customer rows and in segments.';

CREATE TABLE kaireon.segments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    base_schema_id          text,
    joins                   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(joins) = 'array'),
    filters                 jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(filters) IN ('array', 'object')),
    view_name               text,
    customer_count          bigint CHECK (customer_count >= 0),
    status                  text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, base_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id)
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX ON kaireon.segments (tenant_id, base_schema_id);
COMMENT ON TABLE kaireon.segments IS
    'Segment: an audience over a data schema''s rows (filters and joins), materialised by kaireon.publish_segment as the view kaireon_t_<tenant slug>.seg_<id prefix>.';

-- The append-only interaction fact table, range-partitioned by month on occurred_at.
-- kaireon.create_interaction_partitions() creates monthly partitions ahead of time; the
-- default partition catches rows outside them.
--
-- The partitioned parent has no indexes of its own (so no primary key): each partition gets
-- its primary key (tenant_id, id) and indexes from kaireon_internal._index_interaction_partition.
-- The parent belongs to the extension while the monthly partitions do not, and pg_dump
-- restores a partition by attaching it to the parent created by CREATE EXTENSION: indexes
-- on the parent would be cloned onto the partition at that moment and then collide with
-- the partition's own dumped indexes. CHECKs and the row trigger checking the references
-- live on the parent and are cloned to every partition.
CREATE TABLE kaireon.interaction_history (
    tenant_id               text NOT NULL,  -- checked reference (below)
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    occurred_at             timestamptz NOT NULL DEFAULT now(),
    customer_id             text NOT NULL,
    interaction_type        text NOT NULL CHECK (interaction_type IN ('recommendation', 'impression', 'outcome', 'control')),
    outcome_type_key        text,
    direction               text NOT NULL DEFAULT 'outbound' CHECK (direction IN ('inbound', 'outbound')),
    recommendation_id       text,
    rank                    integer CHECK (rank BETWEEN 1 AND 50),
    offer_id                text,  -- checked reference (below)
    creative_id             text,  -- checked reference (below)
    channel_id              text,
    placement_id            text,
    decision_flow_id        text,
    campaign_id             text,
    deduplication_id        text,
    score                   double precision,
    propensity              double precision CHECK (propensity BETWEEN 0 AND 1),
    model_key               text,
    conversion_value        numeric CONSTRAINT interaction_history_conversion_value_range
                            CHECK (conversion_value BETWEEN -1e15 AND 1e15),
    context                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((interaction_type = 'outcome') = (outcome_type_key IS NOT NULL))
) PARTITION BY RANGE (occurred_at);
COMMENT ON TABLE kaireon.interaction_history IS
    'InteractionHistory: append-only fact table of recommendations, impressions, outcomes (outcome_type_key) and control rows (a decision a control group left empty: no offer; docs/lift.md). Range-partitioned by month on occurred_at (midnight UTC boundaries); each partition has primary key (tenant_id, id). See kaireon.create_interaction_partitions.';

-- The lookup indexes lead with the looked-up column, then tenant_id (an entry's place is then
-- mostly decided by its first column, not after the tenant's, equal in almost every entry, and a
-- search for the second column past a variable-length first one; docs/schema.md), and compare
-- their text columns bytewise (text_pattern_ops): every lookup of
-- them is by equality, which text_pattern_ops serves under any collation (equality of a
-- deterministic collation is byte equality), and each of a recording's rows adds an entry to
-- each of them, whose place a text opclass would find through the collation's strcoll (docs/schema.md).
CREATE FUNCTION kaireon_internal._index_interaction_lookups(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('CREATE INDEX ON kaireon.%I (customer_id text_pattern_ops, tenant_id text_pattern_ops, occurred_at DESC)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (recommendation_id text_pattern_ops, tenant_id text_pattern_ops) WHERE recommendation_id IS NOT NULL', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (offer_id text_pattern_ops, tenant_id text_pattern_ops, occurred_at)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (creative_id text_pattern_ops, tenant_id text_pattern_ops)', part);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._index_interaction_lookups(text) IS
    'Internal: the lookup indexes of an interaction_history partition (by customer, recommendation, offer and creative; text columns compared bytewise, text_pattern_ops: their lookups are by equality).';

CREATE FUNCTION kaireon_internal._index_interaction_partition(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('ALTER TABLE kaireon.%I ADD PRIMARY KEY (tenant_id, id)', part);
    PERFORM kaireon_internal._index_interaction_lookups(part);
    -- rows are appended in creation order: a BRIN index finds the newest rows for the
    -- summary rollups (kaireon.rollup_summaries) at almost no cost to writers
    EXECUTE format('CREATE INDEX ON kaireon.%I USING brin (created_at)', part);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._index_interaction_partition(text) IS
    'Internal: the primary key and indexes every interaction_history partition carries (the lookups of kaireon_internal._index_interaction_lookups; a BRIN index on created_at for the summary rollups).';

CREATE TABLE kaireon.interaction_history_default PARTITION OF kaireon.interaction_history DEFAULT;
SELECT kaireon_internal._index_interaction_partition('interaction_history_default');
COMMENT ON TABLE kaireon.interaction_history_default IS
    'InteractionHistory: default partition of interaction_history, for rows outside the monthly partitions.';

-- Checked references (docs/schema.md, "Checked references"): the references of
-- interaction_history to its tenant, offer and creative, and of decision_locks to its tenant,
-- have no foreign key (whose check per row is an SPI query locking the referenced row FOR KEY
-- SHARE: a third of a recording's instructions, and MultiXacts on the hot tenant and offer
-- rows under concurrency). A row trigger of the table checks them under the tenant's
-- reference lock taken in share mode; a trigger of the referenced tables takes it in
-- exclusive mode before it deletes, sets to NULL or refuses to re-key what refers to them
-- (src/config/references.c); 99_finalize.sql creates the triggers. On Citus,
-- kaireon.distribute() makes them foreign keys again (docs/scale-out.md).
CREATE FUNCTION kaireon_internal._checked_references()
    RETURNS TABLE (child name, child_column name, parent name, parent_column name, on_delete text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES ('decision_locks'::name, 'tenant_id'::name, 'tenants'::name, 'id'::name, 'cascade'),
           ('interaction_history', 'tenant_id', 'tenants', 'id', 'cascade'),
           ('interaction_history', 'offer_id', 'offers', 'id', 'set null'),
           ('interaction_history', 'creative_id', 'creatives', 'id', 'set null')
$fn$;
COMMENT ON FUNCTION kaireon_internal._checked_references() IS
    'Internal: the checked references (docs/schema.md): references of a kaireon table served by the triggers "Check_references" and "Checked_references" instead of a foreign key; child_column tenant_id refers to the tenant, any other to (tenant_id, parent_column) of its parent; on_delete says what deleting the parent does (cascade: the tenant''s rows go; set null).';

CREATE FUNCTION kaireon_internal._check_references() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_check_references'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._check_references() IS
    'BEFORE INSERT OR UPDATE row trigger "Check_references" of a table with checked references (arguments: column, referenced table, referenced column, per reference): takes the tenant''s reference lock in share mode and raises 23503 when a referenced row does not exist (latest snapshot).';

CREATE FUNCTION kaireon_internal._checked_reference_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_checked_reference_changed'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._checked_reference_changed() IS
    'AFTER DELETE OR UPDATE row trigger "Checked_references" of a table checked references point to (arguments: table, column, referenced column, action per reference): takes the tenant''s reference lock in exclusive mode, then on delete deletes (cascade) or sets to NULL (set null) the tenant''s referencing rows, as their table''s owner; a key change that rows refer to raises 23503.';

CREATE FUNCTION kaireon_internal._create_checked_reference_triggers() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r           record;
BEGIN
    -- checked in the list's order (the tenant first: a row of a missing tenant says so)
    FOR r IN
        SELECT c.child,
               string_agg(quote_ident(c.child_column), ', ' ORDER BY c.n) AS cols,
               string_agg(format('%L, %L, %L', c.child_column, c.parent, c.parent_column), ', ' ORDER BY c.n) AS args
          FROM kaireon_internal._checked_references() WITH ORDINALITY
               AS c (child, child_column, parent, parent_column, on_delete, n)
         GROUP BY c.child
         ORDER BY c.child
    LOOP
        EXECUTE format('CREATE TRIGGER "Check_references" BEFORE INSERT OR UPDATE OF %s ON kaireon.%I'
                       ' FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_references(%s)',
                       r.cols, r.child, r.args);
    END LOOP;
    -- (a referenced row's key: (tenant_id, parent_column), or the tenants' parent_column)
    FOR r IN
        SELECT c.parent,
               CASE WHEN c.parent = 'tenants' THEN '' ELSE 'tenant_id, ' END
                   || string_agg(DISTINCT quote_ident(c.parent_column), ', ') AS keys,
               string_agg(format('%L, %L, %L, %L', c.child, c.child_column, c.parent_column, c.on_delete), ', '
                          ORDER BY c.n) AS args
          FROM kaireon_internal._checked_references() WITH ORDINALITY
               AS c (child, child_column, parent, parent_column, on_delete, n)
         GROUP BY c.parent
         ORDER BY c.parent
    LOOP
        EXECUTE format('CREATE TRIGGER "Checked_references" AFTER DELETE OR UPDATE OF %s ON kaireon.%I'
                       ' FOR EACH ROW EXECUTE FUNCTION kaireon_internal._checked_reference_changed(%s)',
                       r.keys, r.parent, r.args);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._create_checked_reference_triggers() IS
    'Internal: creates the triggers of kaireon_internal._checked_references(): "Check_references" on each referencing table, "Checked_references" on each referenced one (install and upgrade).';

CREATE FUNCTION kaireon.create_interaction_partitions(months_ahead integer DEFAULT 3,
                                                      from_month date DEFAULT (now() AT TIME ZONE 'UTC')::date)
    RETURNS SETOF text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    m           date;
    lo          timestamptz;
    hi          timestamptz;
    part        text;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, not %', months_ahead
            USING ERRCODE = '22023', HINT = 'Pass how many months after from_month to create.';
    END IF;
    IF from_month IS NULL THEN
        RAISE EXCEPTION 'from_month must not be null'
            USING ERRCODE = '22004', HINT = 'Pass a date in the first month to create.';
    END IF;
    FOR i IN 0 .. months_ahead LOOP
        m := (date_trunc('month', from_month) + make_interval(months => i))::date;
        part := format('interaction_history_p%s', to_char(m, 'YYYY_MM'));
        CONTINUE WHEN to_regclass(format('kaireon.%I', part)) IS NOT NULL;
        -- Month boundaries are midnight UTC, whatever the session's time zone.
        lo := m::timestamp AT TIME ZONE 'UTC';
        hi := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        -- Writers are kept out until commit: a writer that routed its row with the old
        -- partition layout would otherwise put it in the default partition after the new
        -- partition is attached, and fail its partition constraint. Readers of the parent
        -- wait too (the default partition is locked exclusively, as ATTACH needs). Rows of
        -- this month already in the default partition move into the new one.
        -- ONLY: writers and readers lock the parent first, so its lock is enough; locking
        -- every partition too would wait for autovacuum of any of them, holding the parent.
        LOCK TABLE ONLY kaireon.interaction_history IN SHARE ROW EXCLUSIVE MODE;
        LOCK TABLE kaireon.interaction_history_default IN ACCESS EXCLUSIVE MODE;
        -- A concurrent call may have created it while this one waited for the locks.
        CONTINUE WHEN to_regclass(format('kaireon.%I', part)) IS NOT NULL;
        EXECUTE format('CREATE TABLE kaireon.%I (LIKE kaireon.interaction_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format('WITH moved AS (DELETE FROM kaireon.interaction_history_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) INSERT INTO kaireon.%I SELECT * FROM moved',
                       lo, hi, part);
        EXECUTE format('ALTER TABLE kaireon.interaction_history ATTACH PARTITION kaireon.%I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
        PERFORM kaireon_internal._index_interaction_partition(part);
        EXECUTE format('ALTER TABLE kaireon.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('CREATE POLICY tenant_isolation ON kaireon.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())', part);
        PERFORM kaireon_internal._apply_role_grants('kaireon', part);
        EXECUTE format('COMMENT ON TABLE kaireon.%I IS %L', part,
                       format('InteractionHistory: partition of interaction_history for %s', to_char(m, 'YYYY-MM')));
        RETURN NEXT part;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.create_interaction_partitions(integer, date) IS
    'Creates the monthly partitions of interaction_history from from_month (default: today''s UTC date, the month boundaries being UTC) to months_ahead months later (skipping existing ones), moving matching rows out of the default partition; returns the names created.';

CREATE TABLE kaireon.interaction_summaries (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    definition_id           text,
    period_type             text NOT NULL
                            CHECK (period_type IN ('hour', 'day', 'week', 'month', '7d', '30d', '90d', 'all')),
    period_key              text NOT NULL,
    customer_id             text,
    offer_id                text,
    creative_id             text,
    channel_id              text,
    dimension_key           text NOT NULL DEFAULT '',
    impressions             bigint NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    positive                bigint NOT NULL DEFAULT 0 CHECK (positive >= 0),
    negative                bigint NOT NULL DEFAULT 0 CHECK (negative >= 0),
    converts                bigint NOT NULL DEFAULT 0 CHECK (converts >= 0),
    total_value             numeric NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, definition_id, period_type, period_key, customer_id, offer_id,
                               creative_id, channel_id, dimension_key)
);
CREATE INDEX ON kaireon.interaction_summaries (tenant_id, customer_id, period_type);
COMMENT ON TABLE kaireon.interaction_summaries IS
    'InteractionSummary: pre-aggregated interaction counts by period and (customer, offer, creative, channel, dimension), driven by summary definitions.';

CREATE TABLE kaireon.impressions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    offer_id                text,
    creative_id             text,
    channel_id              text,
    placement_id            text,
    recommendation_id       text,
    interaction_id          text,
    context                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    occurred_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, offer_id) REFERENCES kaireon.offers (tenant_id, id) ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, creative_id) REFERENCES kaireon.creatives (tenant_id, id) ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, channel_id) REFERENCES kaireon.channels (tenant_id, id) ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, placement_id) REFERENCES kaireon.placements (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX ON kaireon.impressions (tenant_id, customer_id, occurred_at DESC);
CREATE INDEX ON kaireon.impressions (tenant_id, offer_id);
CREATE INDEX ON kaireon.impressions (tenant_id, creative_id);
CREATE INDEX ON kaireon.impressions (tenant_id, channel_id);
CREATE INDEX ON kaireon.impressions (tenant_id, placement_id);
COMMENT ON TABLE kaireon.impressions IS
    'Impression: channel-level impression mirror (interaction_history is the canonical record).';

CREATE TABLE kaireon.customer_engagement_health (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    score                   double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    inputs                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(inputs) = 'object'),
    computed_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, customer_id)
);
COMMENT ON TABLE kaireon.customer_engagement_health IS
    'CustomerEngagementHealth: nightly engagement score (0..1) per customer from a 90-day rollup; scales engagement-aware contact-policy caps.';

CREATE TABLE kaireon.customer_clv (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    clv_score               double precision NOT NULL DEFAULT 0,
    predicted_revenue       numeric NOT NULL DEFAULT 0,
    churn_probability       double precision CHECK (churn_probability BETWEEN 0 AND 1),
    rfm_recency             integer CHECK (rfm_recency >= 0),
    rfm_frequency           integer CHECK (rfm_frequency >= 0),
    rfm_monetary            numeric,
    segment                 text CHECK (segment IN ('high', 'medium', 'low', 'at_risk')),
    computed_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, customer_id)
);
COMMENT ON TABLE kaireon.customer_clv IS
    'CustomerCLV: per-customer RFM and lifetime-value scores; segment high, medium, low or at_risk.';

CREATE TABLE kaireon.identity_links (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    canonical_id            text NOT NULL,
    identifier_type         text NOT NULL
                            CHECK (identifier_type IN ('email', 'phone', 'session', 'device', 'cookie',
                                                       'customer_id', 'external')),
    identifier_value        text NOT NULL,
    confidence              double precision NOT NULL DEFAULT 1 CHECK (confidence BETWEEN 0 AND 1),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, identifier_type, identifier_value)
);
CREATE INDEX ON kaireon.identity_links (tenant_id, canonical_id);
COMMENT ON TABLE kaireon.identity_links IS
    'IdentityLink: identity resolution graph mapping an email, phone, session or device to a canonical customer id.';

CREATE TABLE kaireon.consent_records (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    subject_id              text NOT NULL,
    purpose                 text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 200),
    status                  text NOT NULL CHECK (status IN ('granted', 'revoked', 'pending')),
    source                  text,
    granted_at              timestamptz,
    revoked_at              timestamptz,
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (status <> 'revoked' OR revoked_at IS NOT NULL)
);
CREATE INDEX ON kaireon.consent_records (tenant_id, subject_id, purpose, created_at DESC);
COMMENT ON TABLE kaireon.consent_records IS
    'ConsentRecord: consent ledger per customer and purpose; the latest row per (subject, purpose) is in force, and recommend drops channels whose purpose is revoked.';
