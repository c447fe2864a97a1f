-- Control groups, lift and attribution (docs/lift.md).
--
-- recommend leaves the placements of a customer in a control group empty and records an
-- interaction_history row of type 'control' (src/decision/pipeline.c, persist.c); the
-- percentages live in tenant_settings.control_group_percent (the tenant's universal group),
-- a decision flow's controlGroupPercent and offers.holdout_percent (an offer's holdout), and
-- kaireon.control_bucket (40_models.sql) is the assignment. Here: the write-time check of
-- the percentages, kaireon.lift (treatment against control) and
-- kaireon.attribute_conversions (conversions credited to earlier recommendations).

CREATE FUNCTION kaireon_internal._check_percent() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_value     text := to_jsonb(NEW) ->> TG_ARGV[0];
BEGIN
    -- NaN sorts above every number: NaN >= 0 holds and NaN <= 100 does not
    IF v_value IS NOT NULL AND NOT (v_value::float8 >= 0 AND v_value::float8 <= 100) THEN
        RAISE EXCEPTION '%.% must be a finite number from 0 to 100, not %', TG_TABLE_NAME, TG_ARGV[0], v_value
            USING ERRCODE = '22023', HINT = 'Give the percentage of customers in the group, from 0 (none) to 100; see docs/lift.md.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_percent() IS
    'Internal: BEFORE trigger refusing with 22023 a percentage column (TG_ARGV[0]) that is not a finite number from 0 to 100, naming the value (tenant_settings.control_group_percent, offers.holdout_percent).';

CREATE TRIGGER check_control_group_percent
    BEFORE INSERT OR UPDATE OF control_group_percent ON kaireon.tenant_settings
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_percent('control_group_percent');
CREATE TRIGGER check_holdout_percent
    BEFORE INSERT OR UPDATE OF holdout_percent ON kaireon.offers
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_percent('holdout_percent');

CREATE FUNCTION kaireon_internal._normal_quantile(p double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    lo          double precision := -40;
    hi          double precision := 40;
    mid         double precision;
BEGIN
    -- bisection on kaireon.normal_cdf: 100 halvings of [-40, 40] reach double precision
    FOR i IN 1 .. 100 LOOP
        mid := (lo + hi) / 2;
        IF kaireon.normal_cdf(mid) < p THEN
            lo := mid;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN (lo + hi) / 2;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._normal_quantile(double precision) IS
    'Internal: the standard normal quantile z with P(Z <= z) = p, by bisection on kaireon.normal_cdf.';

CREATE FUNCTION kaireon_internal._check_window(since timestamptz, until timestamptz) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'since and until must not be null' USING ERRCODE = '22004',
            HINT = 'Pass the window [since, until) to look at.';
    END IF;
    IF since >= until THEN
        RAISE EXCEPTION 'since (%) must be before until (%)', since, until USING ERRCODE = '22023',
            HINT = 'Pass a window [since, until) with since < until.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_window(timestamptz, timestamptz) IS
    'Internal: refuses a window [since, until) of kaireon.lift or kaireon.attribute_conversions that is NULL (22004) or empty (22023).';

CREATE FUNCTION kaireon.lift(tenant_id text, since timestamptz, until timestamptz,
                             flow_key text DEFAULT NULL, confidence double precision DEFAULT 0.95,
                             outcomes text[] DEFAULT NULL)
    RETURNS TABLE (group_name text, customers bigint, converters bigint, conversion_rate double precision,
                   rate_low double precision, rate_high double precision, value_per_customer double precision,
                   absolute_lift double precision, absolute_lift_low double precision,
                   absolute_lift_high double precision, relative_lift double precision,
                   relative_lift_low double precision, relative_lift_high double precision,
                   value_lift double precision, value_lift_low double precision, value_lift_high double precision)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_flow_id   text;
    z           double precision;
    t           record;
    c           record;
    g           record;
    wt          double precision[];
    wc          double precision[];
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    PERFORM kaireon_internal._check_window(since, until);
    IF confidence IS NULL OR NOT (confidence > 0 AND confidence < 1) THEN
        RAISE EXCEPTION 'confidence must be a number between 0 and 1 (exclusive), not %', confidence
            USING ERRCODE = '22023', HINT = 'Pass e.g. 0.95 for 95% intervals.';
    END IF;
    IF flow_key IS NOT NULL THEN
        SELECT f.id INTO v_flow_id FROM kaireon.decision_flows f
         WHERE f.tenant_id = lift.tenant_id AND f.key = flow_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'tenant "%" has no decision flow "%"', tenant_id, flow_key USING ERRCODE = '42704',
                HINT = 'Pass the key of a kaireon.decision_flows row, or NULL for every flow.';
        END IF;
    END IF;
    z := kaireon_internal._normal_quantile(1 - (1 - confidence) / 2);

    FOR g IN
    WITH decisions AS (
        -- each customer's first decision in the window decides the group (on a tie, an offer
        -- made in the same request puts the customer in treatment)
        SELECT DISTINCT ON (h.customer_id) h.customer_id, h.occurred_at AS entered,
               CASE h.interaction_type WHEN 'control' THEN 'control' ELSE 'treatment' END AS grp
          FROM kaireon.interaction_history h
         WHERE h.tenant_id = lift.tenant_id AND h.interaction_type IN ('recommendation', 'control')
           AND h.occurred_at >= since AND h.occurred_at < until
           AND (v_flow_id IS NULL OR h.decision_flow_id = v_flow_id)
         ORDER BY h.customer_id, h.occurred_at, h.interaction_type = 'control'
    ), per_customer AS (
        SELECT d.grp, d.customer_id,
               count(o.id) > 0 AS converted,
               coalesce(sum(coalesce(o.conversion_value, off.value, 0)), 0)::float8 AS value
          FROM decisions d
          LEFT JOIN kaireon.interaction_history o
            ON o.tenant_id = lift.tenant_id AND o.customer_id = d.customer_id
           AND o.interaction_type = 'outcome' AND o.occurred_at >= d.entered AND o.occurred_at < until
           AND CASE WHEN outcomes IS NULL
                    THEN o.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                 WHERE ot.tenant_id = lift.tenant_id
                                                   AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                    ELSE o.outcome_type_key = ANY (outcomes) END
          LEFT JOIN kaireon.offers off ON off.tenant_id = lift.tenant_id AND off.id = o.offer_id
         GROUP BY d.grp, d.customer_id
    )
    SELECT k.grp, count(p.customer_id) AS customers, count(*) FILTER (WHERE p.converted) AS converters,
           coalesce(sum(p.value), 0) AS value_sum, var_samp(p.value) AS value_var
      FROM (VALUES ('treatment'), ('control')) AS k (grp)
      LEFT JOIN per_customer p ON p.grp = k.grp
     GROUP BY k.grp
    LOOP
        IF g.grp = 'treatment' THEN
            t := g;
        ELSE
            c := g;
        END IF;
    END LOOP;

    wt := kaireon.wilson_interval(t.converters, t.customers, z);
    wc := kaireon.wilson_interval(c.converters, c.customers, z);

    group_name := 'treatment';
    customers := t.customers;
    converters := t.converters;
    conversion_rate := t.converters::float8 / nullif(t.customers, 0);
    rate_low := wt[1];
    rate_high := wt[2];
    value_per_customer := t.value_sum / nullif(t.customers, 0);
    IF t.customers > 0 AND c.customers > 0 THEN
        -- Newcombe's hybrid score interval (his method 10) for the difference of two rates
        absolute_lift := conversion_rate - c.converters::float8 / c.customers;
        absolute_lift_low := absolute_lift - sqrt((conversion_rate - wt[1]) ^ 2
                                                  + (wc[2] - c.converters::float8 / c.customers) ^ 2);
        absolute_lift_high := absolute_lift + sqrt((wt[2] - conversion_rate) ^ 2
                                                   + (c.converters::float8 / c.customers - wc[1]) ^ 2);
        value_lift := value_per_customer - c.value_sum / c.customers;
    END IF;
    IF t.converters > 0 AND c.converters > 0 THEN
        -- the rate ratio minus 1, with the log-normal (Katz) interval of the ratio
        relative_lift := conversion_rate / (c.converters::float8 / c.customers) - 1;
        relative_lift_low := (relative_lift + 1) * exp(-z * sqrt(1.0 / t.converters - 1.0 / t.customers
                                                                  + 1.0 / c.converters - 1.0 / c.customers)) - 1;
        relative_lift_high := (relative_lift + 1) * exp(z * sqrt(1.0 / t.converters - 1.0 / t.customers
                                                                 + 1.0 / c.converters - 1.0 / c.customers)) - 1;
    END IF;
    IF t.customers > 1 AND c.customers > 1 THEN
        -- Welch: the normal interval of a difference of means with unequal variances
        value_lift_low := value_lift - z * sqrt(t.value_var / t.customers + c.value_var / c.customers);
        value_lift_high := value_lift + z * sqrt(t.value_var / t.customers + c.value_var / c.customers);
    END IF;
    RETURN NEXT;

    group_name := 'control';
    customers := c.customers;
    converters := c.converters;
    conversion_rate := c.converters::float8 / nullif(c.customers, 0);
    rate_low := wc[1];
    rate_high := wc[2];
    value_per_customer := c.value_sum / nullif(c.customers, 0);
    absolute_lift := NULL; absolute_lift_low := NULL; absolute_lift_high := NULL;
    relative_lift := NULL; relative_lift_low := NULL; relative_lift_high := NULL;
    value_lift := NULL; value_lift_low := NULL; value_lift_high := NULL;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION kaireon.lift(text, timestamptz, timestamptz, text, double precision, text[]) IS
    'Treatment against control over the decisions in [since, until) (of one decision flow, or all): per group its customers (a customer''s first decision in the window puts it in control when it was a control row), converters (an outcome of the given keys, default the positive ones, from that decision until until), conversion rate with its Wilson interval and value per customer (conversion_value, else the offer''s value); on the treatment row the absolute lift (Newcombe''s hybrid score interval), relative lift (log rate-ratio interval) and value-per-customer lift (Welch normal interval), at the given confidence. See docs/lift.md.';

CREATE FUNCTION kaireon.attribute_conversions(tenant_id text, since timestamptz, until timestamptz,
                                              model text DEFAULT 'last_touch',
                                              half_life interval DEFAULT '7 days',
                                              lookback interval DEFAULT '30 days',
                                              outcomes text[] DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rows      integer;
    v_contribution jsonb;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    PERFORM kaireon_internal._check_window(since, until);
    IF model IS NULL OR model NOT IN ('last_touch', 'first_touch', 'linear', 'time_decay', 'position_based',
                                      'data_driven') THEN
        RAISE EXCEPTION 'attribution model "%" is not supported', model USING ERRCODE = '22023',
            HINT = 'Use last_touch, first_touch, linear, time_decay, position_based or data_driven.';
    END IF;
    IF half_life IS NULL OR half_life <= interval '0' THEN
        RAISE EXCEPTION 'half_life must be a positive interval, not %', half_life USING ERRCODE = '22023',
            HINT = 'Pass e.g. interval ''7 days''.';
    END IF;
    IF lookback IS NULL OR lookback <= interval '0' THEN
        RAISE EXCEPTION 'lookback must be a positive interval, not %', lookback USING ERRCODE = '22023',
            HINT = 'Pass how far before a conversion a recommendation counts, e.g. interval ''30 days''.';
    END IF;

    IF model = 'data_driven' THEN
        -- each offer's contribution by Shao and Li's probabilistic model over the window's
        -- paths (docs/lift.md): a path is a customer's set of offers recommended in
        -- [since - lookback, until), converted when the customer has a conversion in the window;
        -- C(i) = P(y | i) + sum over the offers j seen with i of (P(y | i, j) - P(y | i) - P(y | j))
        -- / (2 * their number)
        WITH paths AS (
            SELECT r.customer_id, array_agg(DISTINCT r.offer_id) AS offers
              FROM kaireon.interaction_history r
             WHERE r.tenant_id = attribute_conversions.tenant_id AND r.interaction_type = 'recommendation'
               AND r.offer_id IS NOT NULL
               AND r.occurred_at >= since - lookback AND r.occurred_at < until
             GROUP BY r.customer_id
        ), converted AS (
            SELECT p.offers, EXISTS (
                       SELECT 1 FROM kaireon.interaction_history h
                        WHERE h.tenant_id = attribute_conversions.tenant_id AND h.customer_id = p.customer_id
                          AND h.interaction_type = 'outcome' AND h.occurred_at >= since AND h.occurred_at < until
                          AND CASE WHEN outcomes IS NULL
                                   THEN h.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                                WHERE ot.tenant_id = attribute_conversions.tenant_id
                                                                  AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                                   ELSE h.outcome_type_key = ANY (outcomes) END)::int::float8 AS y
              FROM paths p
        ), singles AS (
            SELECT i.offer, avg(c.y) AS p1 FROM converted c, unnest(c.offers) AS i (offer) GROUP BY i.offer
        ), pairs AS (
            SELECT i.offer AS i, j.offer AS j, avg(c.y) AS p2
              FROM converted c, unnest(c.offers) AS i (offer), unnest(c.offers) AS j (offer)
             WHERE i.offer <> j.offer
             GROUP BY i.offer, j.offer
        )
        SELECT coalesce(jsonb_object_agg(s.offer, s.p1 + coalesce(
                   (SELECT sum(pr.p2 - s.p1 - sj.p1) / (2 * count(*))
                      FROM pairs pr JOIN singles sj ON sj.offer = pr.j
                     WHERE pr.i = s.offer), 0)), '{}')
          INTO v_contribution
          FROM singles s;
    END IF;

    -- idempotent: the window's conversions lose their earlier results of this model
    DELETE FROM kaireon.attribution_results a
     WHERE a.tenant_id = attribute_conversions.tenant_id AND a.model = attribute_conversions.model
       AND a.conversion_id IN (SELECT h.id FROM kaireon.interaction_history h
                                WHERE h.tenant_id = attribute_conversions.tenant_id
                                  AND h.interaction_type = 'outcome'
                                  AND h.occurred_at >= since AND h.occurred_at < until);

    INSERT INTO kaireon.attribution_results (tenant_id, customer_id, conversion_id, model, touchpoints, total_value)
    WITH conversions AS (
        SELECT h.id, h.customer_id, h.occurred_at,
               coalesce(h.conversion_value, off.value, 0) AS value
          FROM kaireon.interaction_history h
          LEFT JOIN kaireon.offers off ON off.tenant_id = h.tenant_id AND off.id = h.offer_id
         WHERE h.tenant_id = attribute_conversions.tenant_id AND h.interaction_type = 'outcome'
           AND h.occurred_at >= since AND h.occurred_at < until
           AND CASE WHEN outcomes IS NULL
                    THEN h.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                 WHERE ot.tenant_id = attribute_conversions.tenant_id
                                                   AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                    ELSE h.outcome_type_key = ANY (outcomes) END
    ), touches AS (
        SELECT cv.id AS conversion_id, r.id, r.recommendation_id, r.offer_id, r.occurred_at,
               row_number() OVER w_last AS from_last,
               row_number() OVER w_first AS from_first,
               count(*) OVER (PARTITION BY cv.id) AS n,
               -- data_driven: the offer's contribution (at least 0), shared by its touches here
               greatest(coalesce((v_contribution ->> r.offer_id)::float8, 0), 0)
                   / count(*) OVER (PARTITION BY cv.id, r.offer_id) AS contribution,
               -- halved per half_life of age, counted from the newest touch (weight 1): the
               -- weights' ratios are those of the age from the conversion, and none underflows
               power(2::float8, greatest(-extract(epoch FROM max(r.occurred_at) OVER (PARTITION BY cv.id) - r.occurred_at)
                                         / extract(epoch FROM half_life), -1000)) AS decay
          FROM conversions cv
          JOIN kaireon.interaction_history r
            ON r.tenant_id = attribute_conversions.tenant_id AND r.customer_id = cv.customer_id
           AND r.interaction_type = 'recommendation'
           AND r.occurred_at <= cv.occurred_at AND r.occurred_at >= cv.occurred_at - lookback
        WINDOW w_last AS (PARTITION BY cv.id ORDER BY r.occurred_at DESC, r.id DESC),
               w_first AS (PARTITION BY cv.id ORDER BY r.occurred_at, r.id)
    ), weighted AS (
        SELECT t.*, CASE model
                        WHEN 'last_touch' THEN CASE WHEN t.from_last = 1 THEN 1 ELSE 0 END
                        WHEN 'first_touch' THEN CASE WHEN t.from_first = 1 THEN 1 ELSE 0 END
                        WHEN 'linear' THEN 1.0 / t.n
                        -- U-shaped: 40% each to the first and the last, 20% shared by the others
                        -- (one touch: all; two: half each)
                        WHEN 'position_based' THEN CASE WHEN t.n = 1 THEN 1
                                                        WHEN t.n = 2 THEN 0.5
                                                        WHEN t.from_first = 1 OR t.from_last = 1 THEN 0.4
                                                        ELSE 0.2 / (t.n - 2) END
                        -- by contribution; linear when no touch has any
                        WHEN 'data_driven' THEN coalesce(t.contribution / nullif(sum(t.contribution) OVER (PARTITION BY t.conversion_id), 0),
                                                         1.0 / t.n)
                        ELSE t.decay / sum(t.decay) OVER (PARTITION BY t.conversion_id) END::float8 AS weight
          FROM touches t
    )
    SELECT attribute_conversions.tenant_id, cv.customer_id, cv.id, model,
           jsonb_agg(jsonb_build_object('interactionId', w.id, 'recommendationId', w.recommendation_id,
                                        'offerId', w.offer_id, 'occurredAt', w.occurred_at,
                                        'weight', w.weight, 'credit', w.weight * cv.value::float8)
                     ORDER BY w.occurred_at, w.id),
           cv.value
      FROM conversions cv
      JOIN weighted w ON w.conversion_id = cv.id
     GROUP BY cv.id, cv.customer_id, cv.value;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$fn$;
COMMENT ON FUNCTION kaireon.attribute_conversions(text, timestamptz, timestamptz, text, interval, interval, text[]) IS
    'Credits each conversion (an outcome of the given keys, default the positive ones) in [since, until) to the customer''s recommendations in the lookback before it, by model last_touch, first_touch, linear, time_decay (weight 2^(-age/half_life), normalised), position_based (40% first, 40% last, 20% shared by the others) or data_driven (each offer''s contribution by Shao and Li''s probabilistic model over the window''s paths), into attribution_results: one row per conversion with touchpoints [{interactionId, recommendationId, offerId, occurredAt, weight, credit}] and total_value (conversion_value, else the offer''s value). Re-running a window replaces its rows of that model. Returns the rows written. See docs/lift.md.';

-- Flow A/B tests (docs/lift.md, "Flow A/B tests"): an experiment whose traffic_split is
-- {"flows": {flowKey: weight}} splits the customers of a decision flow naming it
-- (flowExperiment) between those flows; recommend assigns each customer once, in
-- variant_assignments (src/decision/flow_experiments.c), from the arms compiled with the
-- configuration (src/config/cache.c).

CREATE FUNCTION kaireon_internal._check_flow_experiment() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_arms      jsonb := NEW.traffic_split -> 'flows';
    v_flow      record;
    r           record;
BEGIN
    IF v_arms IS NULL THEN
        RETURN NEW;             -- a champion/challenger experiment of models
    END IF;
    IF jsonb_typeof(v_arms) <> 'object' OR v_arms = '{}' OR (SELECT count(*) FROM jsonb_object_keys(NEW.traffic_split)) > 1 THEN
        RAISE EXCEPTION 'experiment "%": traffic_split must be {"flows": {flowKey: weight, ...}} with at least one flow, not %',
                        NEW.key, NEW.traffic_split
            USING ERRCODE = '22023', HINT = 'For example {"flows": {"main": 50, "main-v2": 50}}; see docs/lift.md.';
    END IF;
    IF NEW.champion_model_id IS NOT NULL OR NEW.holdout_percent <> 0 THEN
        RAISE EXCEPTION 'experiment "%" splits traffic between decision flows: it takes no champion model and no holdout_percent', NEW.key
            USING ERRCODE = '22023',
                  HINT = 'Hold customers out with the flows'' controlGroupPercent; compare models in an experiment of its own.';
    END IF;
    -- the weights (22023): kaireon_internal._split_weights, assign_variant's check too
    FOR r IN SELECT s.arm FROM kaireon_internal._split_weights(NEW.key, v_arms) s LOOP
        SELECT f.status, f.published_version INTO v_flow FROM kaireon.decision_flows f
         WHERE f.tenant_id = NEW.tenant_id AND f.key = r.arm AND f.deleted_at IS NULL;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'experiment "%": arm "%" names no decision flow of tenant "%"', NEW.key, r.arm, NEW.tenant_id
                USING ERRCODE = '42704', HINT = 'Each key of traffic_split.flows is the key of a published decision flow.';
        END IF;
        IF v_flow.status <> 'published' OR v_flow.published_version IS NULL THEN
            RAISE EXCEPTION 'experiment "%": arm "%" names decision flow "%", which is not published (status %)',
                            NEW.key, r.arm, r.arm, v_flow.status
                USING ERRCODE = '55000', HINT = 'Publish it with kaireon.publish_decision_flow first.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_flow_experiment() IS
    'Internal: BEFORE trigger on experiments refusing a flow A/B test (traffic_split {"flows": {flowKey: weight}}) whose split is malformed, whose weights are negative, not finite or all 0 (22023), that names a champion model or a holdout (22023), or whose arm names no decision flow of the tenant (42704) or an unpublished one (55000). See docs/lift.md.';
CREATE TRIGGER check_flow_experiment
    BEFORE INSERT OR UPDATE OF traffic_split, status, champion_model_id, holdout_percent ON kaireon.experiments
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_flow_experiment();

-- the configuration cache compiles the flow experiments: their key, status and split
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OF key, status, traffic_split
    ON kaireon.experiments FOR EACH ROW EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.experiments',
    '(OLD.key, OLD.status, OLD.traffic_split) IS DISTINCT FROM (NEW.key, NEW.status, NEW.traffic_split)');
