-- kaireon install script, part 82: interaction summaries, metrics and customer scores
-- (docs/workers.md, "Summaries, metrics and scores").
--
-- kaireon.rollup_summaries adds the interaction_history rows written since its watermark
-- (by created_at, which a BRIN index on every partition makes cheap to find) to the
-- interaction_summaries rows each summary definition asks for; kaireon.compute_metrics
-- compiles each metric definition into one query over those summaries and writes
-- metric_values; kaireon.compute_engagement_health and kaireon.compute_customer_clv score
-- customers from their recent history. The maintenance worker runs them on schedule.

-- Where each summary definition's rollup has got to.
CREATE TABLE kaireon.summary_state (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    definition_id           text NOT NULL,
    watermark               timestamptz,
    rolling_as_of           date,
    rows_summarised         bigint NOT NULL DEFAULT 0 CHECK (rows_summarised >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, definition_id),
    FOREIGN KEY (tenant_id, definition_id) REFERENCES kaireon.summary_definitions (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.summary_state IS
    'kaireon''s own table: the rollup state of each summary definition: every interaction_history row created before watermark is counted in its summaries; rolling_as_of is the day its rolling windows (7d, 30d, 90d) end on.';

-- When each metric definition was last computed.
CREATE TABLE kaireon.metric_state (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    metric_id               text NOT NULL,
    summary_definition_id   text,
    computed_at             timestamptz,
    customers               bigint NOT NULL DEFAULT 0 CHECK (customers >= 0),
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric_id),
    FOREIGN KEY (tenant_id, metric_id) REFERENCES kaireon.metric_definitions (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.metric_state IS
    'kaireon''s own table: when each metric definition was last computed, from which summary definition, for how many customers, or why it could not be.';

-- What summary definitions and metric definitions may name.
CREATE FUNCTION kaireon_internal._summary_dimensions() RETURNS TABLE (name text, column_name text, expr text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT * FROM (VALUES
        ('customer', 'customer_id', 'h.customer_id'),
        ('offer', 'offer_id', 'h.offer_id'),
        ('creative', 'creative_id', 'h.creative_id'),
        ('channel', 'channel_id', 'h.channel_id'),
        ('placement', NULL, 'h.placement_id'),
        ('decision_flow', NULL, 'h.decision_flow_id'),
        ('campaign', NULL, 'h.campaign_id'),
        ('interaction_type', NULL, 'h.interaction_type'),
        ('outcome', NULL, 'h.outcome_type_key'),
        ('direction', NULL, 'h.direction')
    ) AS d (name, column_name, expr)
$fn$;
COMMENT ON FUNCTION kaireon_internal._summary_dimensions() IS
    'Internal: the dimensions a summary definition may name: customer, offer, creative and channel fill their interaction_summaries columns; the others are joined into dimension_key as name=value|name=value.';

CREATE FUNCTION kaireon_internal._check_summary_definition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v           jsonb;
BEGIN
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.dimensions) e LOOP
        IF jsonb_typeof(v) <> 'string' OR NOT EXISTS (SELECT 1 FROM kaireon_internal._summary_dimensions() d WHERE d.name = v #>> '{}') THEN
            RAISE EXCEPTION 'invalid summary_definitions.dimensions: % is not a dimension', v
                USING ERRCODE = '22023',
                      HINT = 'Dimensions: customer, offer, creative, channel, placement, decision_flow, campaign, interaction_type, outcome, direction.';
        END IF;
    END LOOP;
    IF (SELECT count(*) <> count(DISTINCT e) FROM jsonb_array_elements(NEW.dimensions) e) THEN
        RAISE EXCEPTION 'invalid summary_definitions.dimensions: % names a dimension twice', NEW.dimensions
            USING ERRCODE = '22023', HINT = 'List each dimension once.';
    END IF;
    IF jsonb_array_length(NEW.aggregates) = 0 THEN
        RAISE EXCEPTION 'invalid summary_definitions.aggregates: at least one aggregate is needed'
            USING ERRCODE = '22023', HINT = 'Aggregates: count (all counters), impressions, positive, negative, converts, sum (total_value).';
    END IF;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.aggregates) e LOOP
        IF jsonb_typeof(v) <> 'string' OR (v #>> '{}') NOT IN ('count', 'impressions', 'positive', 'negative', 'converts', 'sum') THEN
            RAISE EXCEPTION 'invalid summary_definitions.aggregates: % is not an aggregate', v
                USING ERRCODE = '22023', HINT = 'Aggregates: count (all counters), impressions, positive, negative, converts, sum (total_value).';
        END IF;
    END LOOP;
    IF jsonb_array_length(NEW.windows) = 0 THEN
        RAISE EXCEPTION 'invalid summary_definitions.windows: at least one window is needed'
            USING ERRCODE = '22023', HINT = 'Windows: hour, day, week, month, all, 7d, 30d, 90d.';
    END IF;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.windows) e LOOP
        IF jsonb_typeof(v) <> 'string' OR (v #>> '{}') NOT IN ('hour', 'day', 'week', 'month', 'all', '7d', '30d', '90d') THEN
            RAISE EXCEPTION 'invalid summary_definitions.windows: % is not a window', v
                USING ERRCODE = '22023', HINT = 'Windows: hour, day, week, month, all, 7d, 30d, 90d.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_summary_definition() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of summary_definitions refusing unknown dimensions, aggregates and windows (22023, naming the value).';
CREATE TRIGGER check_definition BEFORE INSERT OR UPDATE OF dimensions, aggregates, windows ON kaireon.summary_definitions
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_summary_definition();

CREATE FUNCTION kaireon_internal._check_metric_definition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v           jsonb;
BEGIN
    IF NEW.source_field IS NOT NULL
       AND NEW.source_field NOT IN ('impressions', 'positive', 'negative', 'converts', 'total_value') THEN
        RAISE EXCEPTION 'invalid metric_definitions.source_field "%"', NEW.source_field
            USING ERRCODE = '22023', HINT = 'Source fields (interaction_summaries counters): impressions, positive, negative, converts, total_value.';
    END IF;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.group_by_dimensions) e LOOP
        IF jsonb_typeof(v) <> 'string' OR (v #>> '{}') NOT IN ('offer', 'creative', 'channel') THEN
            RAISE EXCEPTION 'invalid metric_definitions.group_by_dimensions: % is not a dimension', v
                USING ERRCODE = '22023', HINT = 'Metrics group by offer, creative or channel (at most two).';
        END IF;
    END LOOP;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.filter_conditions) e LOOP
        IF jsonb_typeof(v) <> 'object' OR (v ->> 'field') IS NULL OR (v ->> 'field') NOT IN ('offer', 'creative', 'channel')
           OR (v ->> 'operator') IS NULL OR (v ->> 'operator') NOT IN ('eq', 'neq', 'in', 'not_in')
           OR NOT v ? 'value'
           OR ((v ->> 'operator') IN ('in', 'not_in')) <> (jsonb_typeof(v -> 'value') = 'array') THEN
            RAISE EXCEPTION 'invalid metric_definitions.filter_conditions: %', v
                USING ERRCODE = '22023',
                      HINT = 'Each condition is {"field": offer|creative|channel, "operator": eq|neq|in|not_in, "value": ...}, with an array value for in and not_in.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_metric_definition() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of metric_definitions refusing source fields, dimensions and filter conditions compute_metrics cannot compile (22023).';
CREATE TRIGGER check_definition BEFORE INSERT OR UPDATE OF source_field, group_by_dimensions, filter_conditions
    ON kaireon.metric_definitions FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_metric_definition();

-- The time before which every interaction_history row that will ever be visible already is:
-- the start of the oldest open transaction of this database (a row's created_at is its
-- transaction's start; autovacuum writes no rows), or now. Runs as the extension owner so it sees every session's transaction start. Read it
-- in an earlier statement than the history (READ COMMITTED), so the history's snapshot is
-- taken after it.
CREATE FUNCTION kaireon_internal._summary_horizon() RETURNS timestamptz
    LANGUAGE sql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT least(now(), (SELECT min(a.xact_start) FROM pg_stat_activity a
                          WHERE a.xact_start IS NOT NULL AND a.datname = current_database()
                            AND a.backend_type <> 'autovacuum worker'))
$fn$;
COMMENT ON FUNCTION kaireon_internal._summary_horizon() IS
    'Internal: the start of the oldest open transaction of the server (or now()): interaction_history rows created before it are all committed or gone, so rollups may count up to it.';

-- One rollup step of one summary definition: the history rows created in [lo, hi).
CREATE FUNCTION kaireon_internal._rollup_step(d kaireon.summary_definitions, lo timestamptz, hi timestamptz, as_of date)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_windows   text[] := ARRAY(SELECT jsonb_array_elements_text(d.windows));
    v_aggs      text[] := ARRAY(SELECT jsonb_array_elements_text(d.aggregates));
    v_dims      text[] := ARRAY(SELECT jsonb_array_elements_text(d.dimensions));
    v_cols      text := '';
    v_key       text;
    v_counters  text[] := '{}';
    v_ctes      text := '';
    v_w         text;
    v_period    text;
    v_where     text;
    v_n         bigint;
    i           integer := 0;
BEGIN
    -- rolling windows are sums of day rows, which are kept too
    IF v_windows && ARRAY['7d', '30d', '90d'] AND NOT v_windows @> ARRAY['day'] THEN
        v_windows := v_windows || 'day'::text;
    END IF;
    -- the interaction_summaries columns the dimensions fill, and the dimension key
    SELECT string_agg(format('%s AS %I', CASE WHEN x.name = ANY (v_dims) THEN x.expr ELSE 'NULL::text' END, x.column_name), ', ')
      INTO v_cols FROM kaireon_internal._summary_dimensions() x WHERE x.column_name IS NOT NULL;
    SELECT coalesce(string_agg(format('%L || coalesce(%s, '''')', x.name || '=', x.expr), ' || ''|'' || ' ORDER BY o.n), '''''')
      INTO v_key
      FROM unnest(v_dims) WITH ORDINALITY AS o (dim, n) JOIN kaireon_internal._summary_dimensions() x ON x.name = o.dim
     WHERE x.column_name IS NULL;
    -- the counters the aggregates ask for (the others stay 0)
    v_counters := ARRAY[
        CASE WHEN v_aggs && ARRAY['count', 'impressions'] THEN 'count(*) FILTER (WHERE h.interaction_type = ''impression'' OR h.outcome_type_key = ''impression'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['count', 'positive'] THEN 'count(*) FILTER (WHERE ot.classification = ''positive'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['count', 'negative'] THEN 'count(*) FILTER (WHERE ot.classification = ''negative'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['count', 'converts'] THEN 'count(*) FILTER (WHERE ot.category = ''conversion'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['sum'] THEN 'coalesce(sum(h.conversion_value), 0)' ELSE '0' END];
    FOREACH v_w IN ARRAY v_windows LOOP
        i := i + 1;
        v_period := CASE v_w
            WHEN 'hour' THEN 'to_char(s.hour, ''YYYY-MM-DD"T"HH24'')'
            WHEN 'day' THEN 'to_char(s.hour, ''YYYY-MM-DD'')'
            WHEN 'week' THEN 'to_char(s.hour, ''IYYY-"W"IW'')'
            WHEN 'month' THEN 'to_char(s.hour, ''YYYY-MM'')'
            WHEN 'all' THEN '''all'''
            ELSE format('%L', to_char(as_of, 'YYYY-MM-DD')) END;
        v_where := CASE v_w
            WHEN '7d' THEN format('WHERE s.hour >= %L', as_of - 6)
            WHEN '30d' THEN format('WHERE s.hour >= %L', as_of - 29)
            WHEN '90d' THEN format('WHERE s.hour >= %L', as_of - 89)
            ELSE '' END;
        v_ctes := v_ctes || format(
            ', w%s AS (INSERT INTO kaireon.interaction_summaries AS x (tenant_id, definition_id, period_type, period_key, '
            '    customer_id, offer_id, creative_id, channel_id, dimension_key, impressions, positive, negative, converts, total_value) '
            '  SELECT $1, $4, %L, %s, s.customer_id, s.offer_id, s.creative_id, s.channel_id, s.dimension_key, '
            '         sum(s.impressions), sum(s.positive), sum(s.negative), sum(s.converts), sum(s.total_value) '
            '    FROM src s %s GROUP BY 4, 5, 6, 7, 8, 9 '
            '  ON CONFLICT (tenant_id, definition_id, period_type, period_key, customer_id, offer_id, creative_id, channel_id, dimension_key) '
            '  DO UPDATE SET impressions = x.impressions + EXCLUDED.impressions, positive = x.positive + EXCLUDED.positive, '
            '                negative = x.negative + EXCLUDED.negative, converts = x.converts + EXCLUDED.converts, '
            '                total_value = x.total_value + EXCLUDED.total_value '
            '  RETURNING 1)', i, v_w, v_period, v_where);
    END LOOP;
    -- one statement: src is read once; every data-modifying CTE runs, read or not
    EXECUTE format(
        'WITH src AS ('
        '  SELECT %s, %s AS dimension_key, date_trunc(''hour'', h.occurred_at AT TIME ZONE ''UTC'') AS hour, '
        '         count(*) AS n, %s AS impressions, %s AS positive, %s AS negative, %s AS converts, %s AS total_value '
        '    FROM kaireon.interaction_history h '
        '    LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = h.tenant_id AND ot.key = h.outcome_type_key '
        '                                      AND ot.deleted_at IS NULL '
        '   WHERE h.tenant_id = $1 AND h.created_at >= $2 AND h.created_at < $3 '
        '   GROUP BY 1, 2, 3, 4, 5, 6) %s '
        'SELECT coalesce((SELECT sum(n) FROM src), 0)::bigint',
        v_cols, v_key, v_counters[1], v_counters[2], v_counters[3], v_counters[4], v_counters[5], v_ctes)
        INTO v_n USING d.tenant_id, lo, hi, d.id;
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._rollup_step(kaireon.summary_definitions, timestamptz, timestamptz, date) IS
    'Internal: adds the interaction_history rows of one tenant created in [lo, hi) to the interaction_summaries rows of one summary definition, for each of its windows (rolling windows as of as_of), in one statement; returns the rows read.';

-- Rebuilds a definition's rolling windows (7d, 30d, 90d) as of a new day, from its day rows.
CREATE FUNCTION kaireon_internal._rollup_rolling(d kaireon.summary_definitions, as_of date) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_w         text;
BEGIN
    DELETE FROM kaireon.interaction_summaries s
     WHERE s.tenant_id = d.tenant_id AND s.definition_id = d.id AND s.period_type IN ('7d', '30d', '90d');
    FOR v_w IN SELECT jsonb_array_elements_text(d.windows) INTERSECT SELECT unnest(ARRAY['7d', '30d', '90d']) LOOP
        INSERT INTO kaireon.interaction_summaries (tenant_id, definition_id, period_type, period_key, customer_id,
                                                   offer_id, creative_id, channel_id, dimension_key, impressions,
                                                   positive, negative, converts, total_value)
        SELECT d.tenant_id, d.id, v_w, to_char(as_of, 'YYYY-MM-DD'), s.customer_id, s.offer_id, s.creative_id,
               s.channel_id, s.dimension_key, sum(s.impressions), sum(s.positive), sum(s.negative),
               sum(s.converts), sum(s.total_value)
          FROM kaireon.interaction_summaries s
         WHERE s.tenant_id = d.tenant_id AND s.definition_id = d.id AND s.period_type = 'day'
           AND s.period_key >= to_char(as_of - (rtrim(v_w, 'd')::integer - 1), 'YYYY-MM-DD')
           AND s.period_key <= to_char(as_of, 'YYYY-MM-DD')
         GROUP BY s.customer_id, s.offer_id, s.creative_id, s.channel_id, s.dimension_key;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._rollup_rolling(kaireon.summary_definitions, date) IS
    'Internal: recomputes the rolling-window rows (7d, 30d, 90d; period_key = the last day) of a summary definition from its day rows, when the day they end on changes.';

CREATE FUNCTION kaireon.rollup_summaries(tenant_id text DEFAULT NULL, max_span interval DEFAULT '1 day')
    RETURNS TABLE (tenant text, definition_key text, rows_read bigint, watermark timestamptz, caught_up boolean)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    d           kaireon.summary_definitions;
    st          kaireon.summary_state;
    v_horizon   timestamptz;
    v_as_of     date;
    v_lo        timestamptz;
    v_hi        timestamptz;
BEGIN
    IF max_span IS NULL OR max_span <= interval '0' THEN
        RAISE EXCEPTION 'max_span must be a positive interval, not %', coalesce(max_span::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how much history (by creation time) one call may add, e.g. ''1 day''.';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kaireon.rollup_summaries needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = '25000',
                  HINT = 'Its watermark is only safe when the history is read with a snapshot taken after the horizon.';
    END IF;
    IF rollup_summaries.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(rollup_summaries.tenant_id);
    END IF;
    v_horizon := kaireon_internal._summary_horizon();
    v_as_of := (v_horizon AT TIME ZONE 'UTC')::date;
    FOR d IN SELECT * FROM kaireon.summary_definitions s
              WHERE s.deleted_at IS NULL
                AND (rollup_summaries.tenant_id IS NULL OR s.tenant_id = rollup_summaries.tenant_id)
              ORDER BY s.tenant_id, s.key LOOP
        INSERT INTO kaireon.summary_state (tenant_id, definition_id) VALUES (d.tenant_id, d.id)
            ON CONFLICT DO NOTHING;
        -- one rollup of a definition at a time: a concurrent one waits, then starts from here
        SELECT * INTO st FROM kaireon.summary_state x
         WHERE x.tenant_id = d.tenant_id AND x.definition_id = d.id FOR UPDATE;
        v_lo := st.watermark;
        IF v_lo IS NULL THEN
            -- from the oldest row, or the horizon if earlier: rows of transactions still open
            -- (created at or after it) are not visible yet
            SELECT min(h.created_at) INTO v_lo FROM kaireon.interaction_history h WHERE h.tenant_id = d.tenant_id;
            v_lo := least(coalesce(v_lo, v_horizon), v_horizon);
        END IF;
        v_hi := greatest(v_lo, least(v_lo + max_span, v_horizon));
        IF d.windows ?| ARRAY['7d', '30d', '90d'] AND st.rolling_as_of IS DISTINCT FROM v_as_of THEN
            PERFORM kaireon_internal._rollup_rolling(d, v_as_of);
        END IF;
        rows_read := CASE WHEN v_hi > v_lo THEN kaireon_internal._rollup_step(d, v_lo, v_hi, v_as_of) ELSE 0 END;
        UPDATE kaireon.summary_state x
           SET watermark = v_hi, rolling_as_of = v_as_of, rows_summarised = x.rows_summarised + rows_read
         WHERE x.tenant_id = d.tenant_id AND x.definition_id = d.id;
        tenant := d.tenant_id;
        definition_key := d.key;
        watermark := v_hi;
        caught_up := v_hi >= v_horizon;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.rollup_summaries(text, interval) IS
    'Adds the interaction_history rows created since each summary definition''s watermark (at most max_span of creation time per definition and call) to its interaction_summaries rows, for every window it lists; rolling windows (7d, 30d, 90d) end on the current UTC day and are rebuilt from day rows when the day changes. Returns, per definition, the rows read, the new watermark and whether it has caught up. READ COMMITTED only. Rows inserted with an explicit created_at older than the watermark are not counted.';

-- Compiles one metric definition into a query over the day rows of a summary definition.
CREATE FUNCTION kaireon_internal._metric_sql(m kaireon.metric_definitions, summary_definition_id text, as_of date)
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_field     text := format('%I', coalesce(m.source_field, 'impressions'));
    v_groups    text[] := ARRAY(SELECT jsonb_array_elements_text(m.group_by_dimensions));
    v_key       text;
    v_filter    text := '';
    v_value     text;
    c           jsonb;
    v_col       text;
BEGIN
    SELECT coalesce(string_agg(format('%L || coalesce(s.%I, '''')', g || '=', g || '_id'), ' || ''|'' || ' ORDER BY n), '''''')
      INTO v_key FROM unnest(v_groups) WITH ORDINALITY AS u (g, n);
    FOR c IN SELECT jsonb_array_elements(m.filter_conditions) LOOP
        v_col := format('s.%I', (c ->> 'field') || '_id');
        v_filter := v_filter || CASE c ->> 'operator'
            WHEN 'eq' THEN format(' AND %s = %L', v_col, c ->> 'value')
            WHEN 'neq' THEN format(' AND %s IS DISTINCT FROM %L', v_col, c ->> 'value')
            WHEN 'in' THEN format(' AND %s = ANY (%L::text[])', v_col, ARRAY(SELECT jsonb_array_elements_text(c -> 'value')))
            WHEN 'not_in' THEN format(' AND %s IS DISTINCT FROM ALL (%L::text[])', v_col, ARRAY(SELECT jsonb_array_elements_text(c -> 'value')))
        END;
    END LOOP;
    v_value := CASE m.aggregate_function
        WHEN 'count' THEN 'sum(daily)'
        WHEN 'sum' THEN 'sum(daily)'
        WHEN 'avg' THEN 'avg(daily)'
        WHEN 'min' THEN 'min(daily)'
        WHEN 'max' THEN 'max(daily)'
        WHEN 'ratio' THEN 'coalesce(sum(daily) / nullif(sum(daily_impressions), 0), 0)'
    END;
    RETURN format(
        'SELECT customer_id, dimension_key, (%s)::double precision AS value FROM ('
        '  SELECT s.customer_id, %s AS dimension_key, s.period_key, sum(s.%s)::double precision AS daily, '
        '         sum(s.impressions)::double precision AS daily_impressions '
        '    FROM kaireon.interaction_summaries s '
        '   WHERE s.tenant_id = %L AND s.definition_id = %L AND s.period_type = ''day'' '
        '     AND s.period_key >= %L AND s.period_key <= %L AND s.customer_id IS NOT NULL %s '
        '   GROUP BY 1, 2, 3) d GROUP BY 1, 2',
        v_value, v_key, v_field, m.tenant_id, summary_definition_id,
        to_char(as_of - (m.window_days - 1), 'YYYY-MM-DD'), to_char(as_of, 'YYYY-MM-DD'), v_filter);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._metric_sql(kaireon.metric_definitions, text, date) IS
    'Internal: the query (customer_id, dimension_key, value) a metric definition compiles to: its aggregate over the daily values of its source field in the window_days days up to as_of, grouped by customer and its group_by_dimensions, filtered by its filter_conditions, from the day rows of a summary definition.';

CREATE FUNCTION kaireon.compute_metrics(tenant_id text DEFAULT NULL, force boolean DEFAULT false)
    RETURNS TABLE (tenant text, metric_key text, customers bigint, status text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    m           kaireon.metric_definitions;
    v_summary   text;
    v_now       timestamptz := clock_timestamp();
    v_as_of     date := (now() AT TIME ZONE 'UTC')::date;
    v_err       text;
BEGIN
    IF compute_metrics.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(compute_metrics.tenant_id);
    END IF;
    FOR m IN SELECT md.* FROM kaireon.metric_definitions md
              LEFT JOIN kaireon.metric_state ms ON ms.tenant_id = md.tenant_id AND ms.metric_id = md.id
              WHERE md.status = 'active'
                AND (compute_metrics.tenant_id IS NULL OR md.tenant_id = compute_metrics.tenant_id)
                AND (force OR ms.computed_at IS NULL
                     OR ms.computed_at <= v_now - make_interval(mins => md.batch_interval_min))
              ORDER BY md.tenant_id, md.key LOOP
        tenant := m.tenant_id;
        metric_key := m.key;
        customers := 0;
        v_err := NULL;
        v_summary := NULL;
        IF m.sql_filter IS NOT NULL THEN
            v_err := 'sql_filter is not supported: it would run arbitrary SQL with the maintenance role''s privileges; use filter_conditions';
        ELSE
            -- the smallest summary definition with the customer, the grouped and the filtered
            -- dimensions, that keeps day rows
            SELECT s.id INTO v_summary FROM kaireon.summary_definitions s
             WHERE s.tenant_id = m.tenant_id AND s.deleted_at IS NULL
               AND s.dimensions @> '["customer"]'
               AND s.dimensions @> m.group_by_dimensions
               AND s.dimensions @> coalesce((SELECT jsonb_agg(DISTINCT c -> 'field') FROM jsonb_array_elements(m.filter_conditions) c), '[]')
               AND s.windows ?| ARRAY['day', '7d', '30d', '90d']
             ORDER BY jsonb_array_length(s.dimensions), s.key
             LIMIT 1;
            IF v_summary IS NULL THEN
                v_err := format('no summary definition keeps day rows with the dimensions customer%s',
                                (SELECT string_agg(', ' || d, '') FROM (SELECT jsonb_array_elements_text(m.group_by_dimensions) AS d
                                     UNION SELECT c ->> 'field' FROM jsonb_array_elements(m.filter_conditions) c) x));
            ELSE
                EXECUTE format('WITH v AS (%s), up AS ('
                               '  INSERT INTO kaireon.metric_values AS x (tenant_id, metric_id, customer_id, dimension_key, value, computed_at) '
                               '  SELECT %L, %L, v.customer_id, v.dimension_key, v.value, %L FROM v '
                               '  ON CONFLICT (tenant_id, metric_id, customer_id, dimension_key) '
                               '  DO UPDATE SET value = EXCLUDED.value, computed_at = EXCLUDED.computed_at RETURNING 1) '
                               'SELECT count(*) FROM up',
                               kaireon_internal._metric_sql(m, v_summary, v_as_of), m.tenant_id, m.id, v_now)
                    INTO customers;
                -- customers without activity in the window have no value any more
                DELETE FROM kaireon.metric_values x
                 WHERE x.tenant_id = m.tenant_id AND x.metric_id = m.id AND x.computed_at < v_now;
            END IF;
        END IF;
        INSERT INTO kaireon.metric_state AS s (tenant_id, metric_id, summary_definition_id, computed_at, customers, error)
        VALUES (m.tenant_id, m.id, v_summary, v_now, customers, v_err)
        ON CONFLICT (tenant_id, metric_id) DO UPDATE
           SET summary_definition_id = EXCLUDED.summary_definition_id, computed_at = EXCLUDED.computed_at,
               customers = EXCLUDED.customers, error = EXCLUDED.error;
        status := coalesce('error: ' || v_err, 'computed');
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.compute_metrics(text, boolean) IS
    'Computes the active metric definitions that are due (last computed batch_interval_min ago or more; all with force): each compiles into one query over the day rows of the smallest summary definition holding the customer and the metric''s dimensions, and its metric_values are replaced. A definition that cannot be compiled (sql_filter, no matching summary definition) is reported and recorded in metric_state.error. Returns one row per metric computed.';

CREATE FUNCTION kaireon.compute_engagement_health(tenant_id text DEFAULT NULL, as_of timestamptz DEFAULT now())
    RETURNS TABLE (tenant text, customers bigint, removed bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    t           text;
    v_now       timestamptz := clock_timestamp();
BEGIN
    IF compute_engagement_health.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(compute_engagement_health.tenant_id);
    END IF;
    FOR t IN SELECT x.id FROM kaireon.tenants x
              WHERE compute_engagement_health.tenant_id IS NULL OR x.id = compute_engagement_health.tenant_id
              ORDER BY x.id LOOP
        WITH h AS (
            SELECT h.customer_id,
                   count(*) FILTER (WHERE h.interaction_type = 'impression' OR h.outcome_type_key = 'impression') AS impressions,
                   count(*) FILTER (WHERE h.interaction_type = 'recommendation') AS recommendations,
                   count(*) FILTER (WHERE ot.classification = 'positive') AS positive,
                   count(*) FILTER (WHERE ot.classification = 'negative') AS negative,
                   max(h.occurred_at) FILTER (WHERE ot.classification = 'positive') AS last_positive
              FROM kaireon.interaction_history h
              LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = h.tenant_id AND ot.key = h.outcome_type_key
                                                AND ot.deleted_at IS NULL
             WHERE h.tenant_id = t AND h.occurred_at > as_of - interval '90 days' AND h.occurred_at <= as_of
             GROUP BY h.customer_id),
        s AS (
            SELECT h.*, greatest(h.impressions, h.recommendations) AS exposures,
                   least(1.0, (h.positive + 1.0) / (greatest(h.impressions, h.recommendations) + 2.0)) AS rate,
                   coalesce(exp(-extract(epoch FROM as_of - h.last_positive) / (30 * 86400.0)), 0) AS recency,
                   h.negative::double precision / greatest(h.positive + h.negative, 1) AS negative_share
              FROM h),
        up AS (
            INSERT INTO kaireon.customer_engagement_health AS e (tenant_id, customer_id, score, inputs, computed_at)
            SELECT t, s.customer_id,
                   least(1.0, greatest(0.0, 0.5 * s.rate + 0.3 * s.recency + 0.2 * (1 - s.negative_share))),
                   jsonb_build_object('exposures', s.exposures, 'positive', s.positive, 'negative', s.negative,
                                      'rate', round(s.rate::numeric, 6), 'recency', round(s.recency::numeric, 6),
                                      'negativeShare', round(s.negative_share::numeric, 6),
                                      'lastPositiveAt', s.last_positive, 'windowDays', 90),
                   v_now
              FROM s
            ON CONFLICT (tenant_id, customer_id) DO UPDATE
               SET score = EXCLUDED.score, inputs = EXCLUDED.inputs, computed_at = EXCLUDED.computed_at
            RETURNING 1)
        SELECT count(*) INTO customers FROM up;
        DELETE FROM kaireon.customer_engagement_health e WHERE e.tenant_id = t AND e.computed_at < v_now;
        GET DIAGNOSTICS removed = ROW_COUNT;
        tenant := t;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.compute_engagement_health(text, timestamptz) IS
    'Scores every customer with history in the 90 days before as_of: score = 0.5 * rate + 0.3 * recency + 0.2 * (1 - negative share), in [0, 1], where rate = (positive + 1) / (exposures + 2), recency = exp(-days since the last positive outcome / 30) (0 without one), negative share = negative / (positive + negative); the inputs are kept in inputs. Customers without history in the window lose their row. The worker runs it nightly (kaireon.score_schedule).';

CREATE FUNCTION kaireon.compute_customer_clv(tenant_id text DEFAULT NULL, as_of timestamptz DEFAULT now(),
                                             horizon_days integer DEFAULT 365)
    RETURNS TABLE (tenant text, customers bigint, removed bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    t           text;
    v_now       timestamptz := clock_timestamp();
BEGIN
    IF horizon_days IS NULL OR horizon_days < 1 OR horizon_days > 3650 THEN
        RAISE EXCEPTION 'horizon_days must be between 1 and 3650, not %', coalesce(horizon_days::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how many days of history the RFM scores look at (default 365).';
    END IF;
    IF compute_customer_clv.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(compute_customer_clv.tenant_id);
    END IF;
    FOR t IN SELECT x.id FROM kaireon.tenants x
              WHERE compute_customer_clv.tenant_id IS NULL OR x.id = compute_customer_clv.tenant_id
              ORDER BY x.id LOOP
        WITH h AS (
            SELECT h.customer_id,
                   count(*) FILTER (WHERE ot.classification = 'positive') AS frequency,
                   coalesce(sum(h.conversion_value) FILTER (WHERE ot.classification = 'positive'), 0) AS monetary,
                   max(h.occurred_at) FILTER (WHERE ot.classification = 'positive') AS last_positive,
                   max(h.occurred_at) AS last_seen
              FROM kaireon.interaction_history h
              LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = h.tenant_id AND ot.key = h.outcome_type_key
                                                AND ot.deleted_at IS NULL
             WHERE h.tenant_id = t AND h.occurred_at > as_of - horizon_days * interval '24 hours'
               AND h.occurred_at <= as_of
             GROUP BY h.customer_id),
        r AS (
            SELECT h.*, floor(extract(epoch FROM as_of - coalesce(h.last_positive, h.last_seen)) / 86400)::integer AS recency
              FROM h),
        q AS (
            SELECT r.*,
                   1 + least(4, floor(5 * percent_rank() OVER (ORDER BY r.recency DESC)))::integer AS r_score,
                   1 + least(4, floor(5 * percent_rank() OVER (ORDER BY r.frequency)))::integer AS f_score,
                   1 + least(4, floor(5 * percent_rank() OVER (ORDER BY r.monetary)))::integer AS m_score,
                   1 - exp(-r.recency / 90.0) AS churn
              FROM r),
        up AS (
            INSERT INTO kaireon.customer_clv AS c (tenant_id, customer_id, clv_score, predicted_revenue, churn_probability,
                                                   rfm_recency, rfm_frequency, rfm_monetary, segment, computed_at)
            SELECT t, q.customer_id, (q.r_score + q.f_score + q.m_score) / 15.0,
                   round(q.monetary * (1 - q.churn)::numeric, 2), q.churn, q.recency, q.frequency, q.monetary,
                   CASE WHEN q.r_score <= 2 AND q.f_score + q.m_score >= 7 THEN 'at_risk'
                        WHEN (q.r_score + q.f_score + q.m_score) / 15.0 >= 0.7 THEN 'high'
                        WHEN (q.r_score + q.f_score + q.m_score) / 15.0 >= 0.4 THEN 'medium'
                        ELSE 'low' END,
                   v_now
              FROM q
            ON CONFLICT (tenant_id, customer_id) DO UPDATE
               SET clv_score = EXCLUDED.clv_score, predicted_revenue = EXCLUDED.predicted_revenue,
                   churn_probability = EXCLUDED.churn_probability, rfm_recency = EXCLUDED.rfm_recency,
                   rfm_frequency = EXCLUDED.rfm_frequency, rfm_monetary = EXCLUDED.rfm_monetary,
                   segment = EXCLUDED.segment, computed_at = EXCLUDED.computed_at
            RETURNING 1)
        SELECT count(*) INTO customers FROM up;
        DELETE FROM kaireon.customer_clv c WHERE c.tenant_id = t AND c.computed_at < v_now;
        GET DIAGNOSTICS removed = ROW_COUNT;
        tenant := t;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.compute_customer_clv(text, timestamptz, integer) IS
    'RFM and lifetime-value scores of every customer with history in the horizon_days before as_of: recency (days since the last positive outcome, else the last interaction), frequency (positive outcomes), monetary (their conversion_value); each scored 1..5 by percent rank within the tenant (recent, frequent, valuable = 5); clv_score = (R + F + M) / 15; churn_probability = 1 - exp(-recency / 90); predicted_revenue = monetary * (1 - churn); segment at_risk (R <= 2 with F + M >= 7), else high (clv >= 0.7), medium (>= 0.4), low. Customers without history in the horizon lose their row. The worker runs it nightly.';
