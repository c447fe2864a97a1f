-- kaireon install script, part 40: scoring models (docs/models.md).
--   * the tables: algorithm_models, model_versions, model_adaptations, model_approvals,
--     model_drift_checks, experiments and their challengers and assignments,
--     variant_assignments, ml_job_results;
--   * C entry points: score, explain_score, model_features, model_learn, import_model,
--     train_model, check_drift, and the triggers that validate models and invalidate the
--     per-backend model cache;
--   * the model registry (draft / shadow / challenger / champion / archived), model_versions
--     snapshots and four-eyes promotion approvals;
--   * shadow score logging;
--   * champion/challenger experiments and generic A/B variant assignment.
-- Conventions are in docs/schema.md ("Conventions"); 99_finalize.sql adds the updated_at
-- triggers, the tenant_isolation policies, soft-delete indexes and pg_dump registration.
-- User ids (requested_by, reviewed_by, ...) are plain text, without a foreign key.

-- ---------------------------------------------------------------------------------------
-- Algorithm models and experiments: tables
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.algorithm_models (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL,
    name                    text NOT NULL,
    description             text,
    model_type              text NOT NULL DEFAULT 'scorecard'
                            CHECK (model_type IN ('scorecard', 'bayesian', 'logistic_regression',
                                                  'gradient_boosted', 'thompson_bandit',
                                                  'epsilon_greedy', 'online_learner', 'adaptive')),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'training', 'active', 'archived')),
    target_field            text,
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    predictors              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(predictors) = 'array'),
    metrics                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    model_state             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(model_state) = 'object'),
    outcome_weights         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(outcome_weights) = 'object'),
    version                 integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    registry_status         text NOT NULL DEFAULT 'draft'
                            CHECK (registry_status IN ('draft', 'shadow', 'challenger', 'champion',
                                                       'archived')),
    registry_family         text,
    last_trained_at         timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key)
);
COMMENT ON TABLE kaireon.algorithm_models IS
    'AlgorithmModel: a scoring model (scorecard, bayesian, logistic_regression, gradient_boosted, thompson_bandit, epsilon_greedy, online_learner, adaptive) with its predictors, learned state (model_state), metrics and outcome weights. registry_status places it in the model registry; at most one champion per (tenant_id, registry_family); a model with a NULL registry_family belongs to no family.';

-- At most one champion per model family.
CREATE UNIQUE INDEX algorithm_models_one_champion_idx
    ON kaireon.algorithm_models (tenant_id, registry_family)
    WHERE registry_status = 'champion';

CREATE TABLE kaireon.model_versions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    model_state             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(model_state) = 'object'),
    metrics                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    predictors              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(predictors) = 'array'),
    created_by              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, model_id, version),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_versions IS
    'ModelVersion: immutable historical snapshot of an AlgorithmModel''s configuration, learned state, metrics and predictors at one version (append-only).';

CREATE TABLE kaireon.model_adaptations (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text,
    scope                   text NOT NULL DEFAULT 'global'
                            CHECK (scope IN ('global', 'category', 'offer', 'channel')),
    scope_id                text,
    positives               bigint NOT NULL DEFAULT 0 CHECK (positives >= 0),
    negatives               bigint NOT NULL DEFAULT 0 CHECK (negatives >= 0),
    positive_rate           double precision NOT NULL DEFAULT 0
                            CHECK (positive_rate >= 0 AND positive_rate <= 1),
    predictor_bins          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(predictor_bins) = 'object'),
    predictor_aucs          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(predictor_aucs) = 'object'),
    sketch                  bytea,
    shard                   smallint NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < 64),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, model_id, scope, scope_id, shard),
    CHECK ((scope = 'global') = (scope_id IS NULL)),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_adaptations IS
    'ModelAdaptation: learned propensity for one scope (global, category, offer or channel; scope_id is NULL for global and otherwise the category, offer or channel id (an adaptive model per offer and channel: the JSON array [offer id, channel id]), not a foreign key because it is polymorphic): positive/negative counts, positive rate, per-predictor bins and AUCs. model_id NULL holds the tenant''s adaptive propensity counts, which respond updates for every outcome; rows with a model_id belong to that AlgorithmModel: an adaptive model keeps one scope offer row per offer (and channel, with perChannel) and shard, whose sketch (binary, written by kaireon only) holds the shard''s bin sketches (docs/models.md, adaptive). A scope''s counts may be spread over several shard rows (respond writes the shard of its backend, so concurrent outcomes do not queue on one row): its totals are the sums over its shards, and positive_rate is each row''s own.';
-- An adaptive model's sketch is rewritten by every outcome: kept in the row, uncompressed,
-- while the row fits in a page (no TOAST work per outcome; docs/models.md, adaptive).
ALTER TABLE kaireon.model_adaptations ALTER COLUMN sketch SET STORAGE MAIN;
ALTER TABLE kaireon.model_adaptations SET (toast_tuple_target = 8160);

CREATE TABLE kaireon.model_approvals (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    requested_by            text NOT NULL,
    reviewed_by             text,
    reviewed_at             timestamptz,
    comment                 text,
    metrics                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_approvals IS
    'ModelApproval: production-promotion governance ticket for one version of an AlgorithmModel, with the metrics it was judged on; at most one pending ticket per model version. requested_by/reviewed_by are user ids (no foreign key: kaireon.users is created later).';

CREATE INDEX model_approvals_model_version_idx
    ON kaireon.model_approvals (tenant_id, model_id, version);
-- At most one open ticket per model version.
CREATE UNIQUE INDEX model_approvals_one_pending_idx
    ON kaireon.model_approvals (tenant_id, model_id, version)
    WHERE status = 'pending';

CREATE TABLE kaireon.model_drift_checks (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    check_type              text NOT NULL
                            CHECK (check_type IN ('psi', 'ks_test', 'auc_decay', 'feature_drift')),
    baseline                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(baseline) = 'object'),
    current                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(current) = 'object'),
    drift_score             double precision NOT NULL DEFAULT 0,
    threshold               double precision,
    drifted                 boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_drift_checks IS
    'ModelDriftCheck: one drift check of an AlgorithmModel (psi, ks_test, auc_decay or feature_drift) comparing baseline and current distributions; drifted when drift_score crossed threshold (append-only).';

CREATE INDEX model_drift_checks_model_created_idx
    ON kaireon.model_drift_checks (tenant_id, model_id, created_at);

CREATE TABLE kaireon.experiments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL,
    name                    text NOT NULL,
    description             text,
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'running', 'paused', 'completed', 'archived')),
    champion_model_id       text,
    traffic_split           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(traffic_split) = 'object'),
    auto_promote            boolean NOT NULL DEFAULT false,
    auto_promote_days       integer NOT NULL DEFAULT 14 CHECK (auto_promote_days > 0),
    auto_promote_threshold  double precision NOT NULL DEFAULT 0.95
                            CHECK (auto_promote_threshold >= 0 AND auto_promote_threshold <= 1),
    holdout_percent         double precision NOT NULL DEFAULT 0
                            CHECK (holdout_percent >= 0 AND holdout_percent <= 100),
    results                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(results) = 'object'),
    started_at              timestamptz,
    ended_at                timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key),
    CHECK (ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at),
    FOREIGN KEY (tenant_id, champion_model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
COMMENT ON TABLE kaireon.experiments IS
    'Experiment: champion/challenger experiment between an AlgorithmModel champion and its ExperimentChallengers, with traffic split, holdout percentage, results and optional auto-promotion of a challenger that beats the champion (auto_promote_threshold) after auto_promote_days.';

CREATE INDEX experiments_champion_model_idx
    ON kaireon.experiments (tenant_id, champion_model_id);

CREATE TABLE kaireon.experiment_challengers (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    experiment_id           text NOT NULL,
    model_id                text NOT NULL,
    traffic_pct             double precision NOT NULL DEFAULT 0
                            CHECK (traffic_pct >= 0 AND traffic_pct <= 100),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, experiment_id, model_id),
    FOREIGN KEY (tenant_id, experiment_id) REFERENCES kaireon.experiments (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.experiment_challengers IS
    'ExperimentChallenger: an AlgorithmModel taking part in an Experiment as challenger, with its share of traffic in percent.';

CREATE INDEX experiment_challengers_model_idx
    ON kaireon.experiment_challengers (tenant_id, model_id);

CREATE TABLE kaireon.experiment_assignments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    experiment_id           text NOT NULL,
    variant                 text NOT NULL,
    assigned_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, experiment_id, customer_id),
    FOREIGN KEY (tenant_id, experiment_id) REFERENCES kaireon.experiments (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.experiment_assignments IS
    'ExperimentAssignment: sticky assignment of a customer to a variant (champion, challenger or holdout) of an Experiment, so the customer sees the same variant on every decision.';

CREATE INDEX experiment_assignments_customer_idx
    ON kaireon.experiment_assignments (tenant_id, customer_id);

CREATE TABLE kaireon.variant_assignments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    experiment_key          text NOT NULL,
    variant_name            text NOT NULL,
    assigned_at             timestamptz NOT NULL DEFAULT now(),
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, experiment_key, customer_id),
    CHECK (expires_at IS NULL OR expires_at > assigned_at)
);
COMMENT ON TABLE kaireon.variant_assignments IS
    'VariantAssignment: sticky assignment of a customer to a named variant of an experiment identified by key (content or flow A/B tests), optionally expiring at expires_at.';

CREATE INDEX variant_assignments_customer_idx
    ON kaireon.variant_assignments (tenant_id, customer_id);
CREATE INDEX variant_assignments_expires_idx
    ON kaireon.variant_assignments (tenant_id, expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE kaireon.ml_job_results (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    job_type                text NOT NULL
                            CHECK (job_type IN ('policy_analysis', 'segmentation', 'content_analysis',
                                                'training', 'drift_check')),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    input                   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
    result                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(result) = 'object'),
    error                   text,
    requested_by            text,
    started_at              timestamptz,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.ml_job_results IS
    'MlJobResult: an asynchronous ML job (policy_analysis, segmentation, content_analysis, training, drift_check) with its input, status, result and error.';

CREATE INDEX ml_job_results_status_idx
    ON kaireon.ml_job_results (tenant_id, status, created_at);
CREATE INDEX ml_job_results_type_idx
    ON kaireon.ml_job_results (tenant_id, job_type, created_at);

-- ---------------------------------------------------------------------------------------
-- Scoring (src/scoring/scoring.c, src/scoring/models/)
-- score, score_vector and explain_score are VOLATILE because bandit scores are random draws;
-- they are PARALLEL SAFE (each process draws from its own generator).
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon.score(tenant_id text, model_key text, features jsonb, arm text DEFAULT NULL)
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_score_jsonb'
    LANGUAGE C VOLATILE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION kaireon.score(text, text, jsonb, text) IS
    'Scores features (a JSON object of feature names and values; missing or null features are missing values) with the tenant''s model: a probability for classifiers and bandits (arm = the offer id), the raw prediction for regression models. 42704 when the model does not exist, 55000 when it has no learned state yet.';

CREATE FUNCTION kaireon.score_vector(tenant_id text, model_key text, features double precision[], arm text DEFAULT NULL)
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_score_array'
    LANGUAGE C VOLATILE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION kaireon.score_vector(text, text, double precision[], text) IS
    'Scores numeric features given in the order of kaireon.model_features(tenant_id, model_key) (NULL or NaN elements are missing values); the fast form for scoring many rows.';

CREATE FUNCTION kaireon.explain_score(tenant_id text, model_key text, features jsonb, arm text DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_explain_score'
    LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.explain_score(text, text, jsonb, text) IS
    'The score with its factors: matched rules (scorecard), per-predictor log-odds (bayesian), per-feature logit contributions (logistic_regression, online_learner), TreeSHAP contributions and expected value (gradient_boosted), arm state (bandits), the offer''s bins, AUCs, active predictors and log-odds contributions, raw and calibrated score (adaptive). See docs/models.md.';

-- ---- adaptive models (src/scoring/models/adaptive.c) ----

CREATE FUNCTION kaireon_internal._adaptive_learn(sketch bytea, observation bytea, positive boolean,
                                                 sketch_bins integer, max_symbols integer)
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'kaireon_adaptive_learn_sql'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._adaptive_learn(bytea, bytea, boolean, integer, integer) IS
    'Internal: the sketch of an adaptive model''s model_adaptations shard row (NULL: empty) after one outcome (the observation''s numeric values into bin sketches of at most sketch_bins bins, symbolic values counted, at most max_symbols per predictor). Pure; used by the upsert of adaptive learning.';

CREATE FUNCTION kaireon.adaptive_report(tenant_id text, model_key text, offer_id text,
                                        channel_id text DEFAULT NULL)
    RETURNS TABLE (predictor text, predictor_type text, auc double precision, active boolean, bins jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_adaptive_report_sql'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION kaireon.adaptive_report(text, text, text, text) IS
    'The predictors of an adaptive model''s model for one offer (and channel_id, for a model with config perChannel), highest AUC first: type (numeric or symbolic), AUC of its bins, whether it is active (AUC above aucThreshold), and its bins (interval lower/upper or values, the missing bin, positives, negatives, log-odds contribution), as the backend compiled them (refreshed per config refreshMs). No rows when the offer has learned nothing; 22023 for a model that is not adaptive.';

CREATE FUNCTION kaireon.model_features(tenant_id text, model_key text)
    RETURNS text[]
    AS 'MODULE_PATHNAME', 'kaireon_model_features_sql'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.model_features(text, text) IS
    'The feature names a model reads, in the order kaireon.score_vector expects.';

CREATE FUNCTION kaireon.model_learn(tenant_id text, model_key text, arm text DEFAULT NULL,
                                    features jsonb DEFAULT NULL, outcome text DEFAULT 'positive')
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_model_learn_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.model_learn(text, text, text, jsonb, text) IS
    'Online learning from one outcome (classification positive, negative or neutral): bayesian models count the features'' bins, bandits the arm (offer id), online_learner models take one SGD step (scikit-learn''s SGDClassifier update), adaptive models the offer''s (arm''s) counts and bin sketches in this backend''s model_adaptations shard row (no model row lock). Bayesian, online_learner models and bandits take the model''s row lock; no new version. False when the model does not learn online or the outcome is neutral. Called by respond.';

CREATE FUNCTION kaireon.import_model(tenant_id text, model_key text, format text, document text,
                                     options jsonb DEFAULT '{}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_import_model'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.import_model(text, text, text, text, jsonb) IS
    'Imports a tree ensemble (format xgboost_json: Booster.save_model(''m.json''); lightgbm_json: Booster.dump_model()) as the gradient_boosted model model_key, creating it or replacing its state (a new version). options: featureNames, name, family. Returns the model id; 22023 for a malformed or unsupported document, nothing stored.';

CREATE FUNCTION kaireon.train_model(tenant_id text, model_key text, since timestamptz DEFAULT NULL,
                                    until timestamptz DEFAULT NULL, options jsonb DEFAULT '{}')
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_train_model'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.train_model(text, text, timestamptz, timestamptz, jsonb) IS
    'Trains a logistic_regression (L2-regularised, Newton/IRLS), bayesian (naive Bayes counts) or online_learner (the outcomes replayed in time order through its SGD update) model from the tenant''s positive and negative outcomes in [since, until) joined to customer features; stores state and metrics (auc, logLoss, samples, featureBaseline: each predictor''s training distribution for feature_drift) as a new version. options: l2, maxIterations, alpha, offerId, dataSchemaId, minExamples.';

CREATE FUNCTION kaireon.check_drift(tenant_id text, model_key text,
                                    baseline_start timestamptz DEFAULT NULL, baseline_end timestamptz DEFAULT NULL,
                                    current_start timestamptz DEFAULT NULL, current_end timestamptz DEFAULT NULL,
                                    thresholds jsonb DEFAULT '{}')
    RETURNS TABLE (check_type text, drift_score double precision, threshold double precision, drifted boolean)
    AS 'MODULE_PATHNAME', 'kaireon_check_drift'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.check_drift(text, text, timestamptz, timestamptz, timestamptz, timestamptz, jsonb) IS
    'Drift of a model''s scores between a baseline window (default: the 30 days before the current one) and the current window (default: the last 7 days): PSI, KS statistic and AUC decay (baseline AUC minus current AUC); and, for a model train_model recorded a feature baseline for, feature_drift: each predictor''s PSI in the current window against its training distribution (drift_score the largest). Writes one model_drift_checks row per measure. thresholds: psi (0.2), ks_test (0.1), auc_decay (0.05), feature_drift (0.2).';

CREATE FUNCTION kaireon.set_model_seed(seed bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_set_model_seed'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon.set_model_seed(bigint) IS
    'Seeds this session''s random draws of bandit models (Thompson sampling, epsilon-greedy exploration), for reproducible tests.';

CREATE FUNCTION kaireon.fnv1a(value text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'kaireon_fnv1a'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.fnv1a(text) IS
    '32-bit FNV-1a hash of the text''s UTF-8 bytes, as a bigint in [0, 2^32); experiments assign customers by it.';

CREATE FUNCTION kaireon.normal_cdf(z double precision) RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_normal_cdf'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.normal_cdf(double precision) IS
    'Standard normal cumulative distribution function (for the experiments'' z-tests).';

CREATE FUNCTION kaireon_internal._validate_model() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_model_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_model() IS
    'Internal: BEFORE INSERT OR UPDATE row trigger on algorithm_models compiling the model (22023 naming the field when malformed) and bumping version when its definition or registry place changes.';

CREATE FUNCTION kaireon_internal._models_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_models_changed_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._models_changed() IS
    'Internal: AFTER statement trigger on algorithm_models invalidating every backend''s model cache (relcache invalidation of the table).';

CREATE TRIGGER b_validate_model BEFORE INSERT OR UPDATE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_model();
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kaireon.algorithm_models
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._models_changed();

-- ---------------------------------------------------------------------------------------
-- Registry: allowed transitions, one champion per family, snapshots, four-eyes
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon.registry_transitions()
    RETURNS TABLE (from_status text, to_status text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES ('draft', 'shadow'), ('draft', 'challenger'), ('draft', 'archived'),
           ('shadow', 'challenger'), ('shadow', 'draft'), ('shadow', 'archived'),
           ('challenger', 'champion'), ('challenger', 'shadow'), ('challenger', 'archived'),
           ('champion', 'archived'),
           ('archived', 'draft')
$fn$;
COMMENT ON FUNCTION kaireon.registry_transitions() IS
    'The model registry''s allowed transitions of registry_status; any other change is refused (55000). A champion leaves only by archiving, which promoting another model of its family does.';

CREATE FUNCTION kaireon_internal._registry_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_allowed   text;
BEGIN
    IF NEW.registry_status NOT IN ('draft', 'shadow', 'challenger', 'champion', 'archived') THEN
        RETURN NEW;             -- the CHECK constraint reports it
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- creating a row is not a transition (pg_restore creates champions this way), but a
        -- champion needs a family
        IF NEW.registry_status = 'champion' AND NEW.registry_family IS NULL THEN
            RAISE EXCEPTION 'model "%" has no registry_family, so it cannot be a family''s champion', NEW.key
                USING ERRCODE = '22023', HINT = 'Set registry_family, or create the model as draft.';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.registry_family IS DISTINCT FROM OLD.registry_family AND OLD.registry_status = 'champion'
       AND NEW.registry_status = 'champion' THEN
        RAISE EXCEPTION 'champion model "%" cannot change family', OLD.key
            USING ERRCODE = '55000', HINT = 'Archive it first.';
    END IF;
    IF NEW.registry_status = OLD.registry_status THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.registry_transitions() t
                    WHERE t.from_status = OLD.registry_status AND t.to_status = NEW.registry_status) THEN
        SELECT string_agg(t.to_status, ', ') INTO v_allowed
          FROM kaireon.registry_transitions() t WHERE t.from_status = OLD.registry_status;
        RAISE EXCEPTION 'model "%": registry transition from % to % is not allowed', OLD.key,
                        OLD.registry_status, NEW.registry_status
            USING ERRCODE = '55000', HINT = format('From %s a model may move to: %s.', OLD.registry_status, v_allowed);
    END IF;
    IF NEW.registry_status = 'champion' THEN
        IF NEW.registry_family IS NULL THEN
            RAISE EXCEPTION 'model "%" has no registry_family, so it cannot be a family''s champion', NEW.key
                USING ERRCODE = '22023', HINT = 'Set registry_family first.';
        END IF;
        -- four-eyes: only an approved model.promote request may promote (60_governance.sql)
        IF kaireon.four_eyes_required(NEW.tenant_id) AND kaireon.approval_in_progress() IS NULL THEN
            RAISE EXCEPTION 'promoting model "%" (version %) to champion needs an approved request (four-eyes is enabled)',
                            NEW.key, OLD.version
                USING ERRCODE = '42501',
                      HINT = 'kaireon.transition_model(tenant_id, model_key, ''champion'') files one (action model.promote); another user approves it with kaireon.approve_request.';
        END IF;
        -- one champion per family: the promotion archives the current one in this transaction,
        -- with promotions of one family serialised
        PERFORM pg_advisory_xact_lock(hashtextextended('kaireon.champion:' || NEW.tenant_id || ':' || NEW.registry_family, 0));
        UPDATE kaireon.algorithm_models m SET registry_status = 'archived'
         WHERE m.tenant_id = NEW.tenant_id AND m.registry_family = NEW.registry_family
           AND m.registry_status = 'champion' AND m.id <> NEW.id;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._registry_check() IS
    'Internal: BEFORE INSERT OR UPDATE trigger on algorithm_models enforcing the registry transitions, four-eyes approval of promotions and one champion per family (archiving the previous champion).';
CREATE TRIGGER a_registry_check BEFORE INSERT OR UPDATE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._registry_check();

CREATE FUNCTION kaireon_internal._snapshot_model() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.version <> OLD.version THEN
        INSERT INTO kaireon.model_versions (tenant_id, model_id, version, config, model_state, metrics,
                                            predictors, created_by)
        VALUES (NEW.tenant_id, NEW.id, NEW.version, NEW.config, NEW.model_state, NEW.metrics,
                NEW.predictors, nullif(current_setting('kaireon.user_id', true), ''))
        ON CONFLICT (tenant_id, model_id, version) DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._snapshot_model() IS
    'Internal: AFTER INSERT OR UPDATE trigger on algorithm_models writing a model_versions snapshot of every new version.';
CREATE TRIGGER snapshot_model AFTER INSERT OR UPDATE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._snapshot_model();

CREATE FUNCTION kaireon_internal._model_version_restore() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Restoring a dump inserts each model (whose trigger snapshots its current row) before the
    -- dumped model_versions rows; the dumped snapshot of that version replaces the one the
    -- restore wrote, which is recognised as identical to the model's current row (online
    -- learning may have moved the row's counts since the version's original snapshot).
    -- Any other snapshot under an existing version is still refused by the unique key.
    DELETE FROM kaireon.model_versions v
     USING kaireon.algorithm_models m
     WHERE v.tenant_id = NEW.tenant_id AND v.model_id = NEW.model_id AND v.version = NEW.version
       AND v.id <> NEW.id AND m.tenant_id = v.tenant_id AND m.id = v.model_id AND m.version = v.version
       AND v.config = m.config AND v.model_state = m.model_state AND v.metrics = m.metrics
       AND v.predictors = m.predictors;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._model_version_restore() IS
    'Internal: BEFORE INSERT trigger on model_versions letting a restored snapshot replace the identical snapshot its model''s restore just wrote.';
CREATE TRIGGER model_version_restore BEFORE INSERT ON kaireon.model_versions
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._model_version_restore();

CREATE FUNCTION kaireon.transition_model(tenant_id text, model_key text, to_status text,
                                         family text DEFAULT NULL)
    RETURNS kaireon.algorithm_models
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_row   kaireon.algorithm_models;
    v_req   text;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF to_status IS NULL OR to_status NOT IN ('draft', 'shadow', 'challenger', 'champion', 'archived') THEN
        RAISE EXCEPTION 'unknown registry status "%"', to_status
            USING ERRCODE = '22023', HINT = 'Use draft, shadow, challenger, champion or archived.';
    END IF;
    -- four-eyes: a promotion is filed for approval (action model.promote) instead of made
    IF to_status = 'champion' AND kaireon.four_eyes_required(tenant_id) AND kaireon.approval_in_progress() IS NULL THEN
        SELECT * INTO v_row FROM kaireon.algorithm_models m
         WHERE m.tenant_id = transition_model.tenant_id AND m.key = model_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'tenant "%" has no model "%"', tenant_id, model_key
                USING ERRCODE = '42704', HINT = 'Check the model key.';
        END IF;
        v_req := kaireon.request_approval(tenant_id, 'model.promote', v_row.id,
                                          jsonb_build_object('modelKey', v_row.key, 'version', v_row.version,
                                                             'family', coalesce(family, v_row.registry_family)));
        RAISE NOTICE 'the promotion of model "%" (version %) to champion awaits approval: request %', v_row.key, v_row.version, v_req
            USING HINT = 'Another user approves it with kaireon.approve_request; the model is unchanged until then.';
        RETURN v_row;
    END IF;
    UPDATE kaireon.algorithm_models m
       SET registry_status = to_status, registry_family = coalesce(family, m.registry_family)
     WHERE m.tenant_id = transition_model.tenant_id AND m.key = model_key
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no model "%"', tenant_id, model_key
            USING ERRCODE = '42704', HINT = 'Check the model key.';
    END IF;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION kaireon.transition_model(text, text, text, text) IS
    'Moves a model through the registry (kaireon.registry_transitions()); promoting to champion archives the family''s champion in the same transaction. With four-eyes enabled a promotion is filed as an approval request (action model.promote) and the row is returned unchanged. Returns the (updated) row.';


-- ---------------------------------------------------------------------------------------
-- Shadow scores
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.model_shadow_scores (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    customer_id             text NOT NULL,
    offer_id                text,
    recommendation_id       text,
    score                   double precision NOT NULL,
    ranking_model_id        text,
    ranking_score           double precision,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_shadow_scores IS
    'kaireon''s own table: the score a shadow model gave a candidate (customer, offer) of a decision, beside the score of the model that ranked it; shadow models are scored and logged, never used to rank. Append-only.';
CREATE INDEX model_shadow_scores_model_idx ON kaireon.model_shadow_scores (tenant_id, model_id, created_at);

CREATE FUNCTION kaireon.log_shadow_scores(tenant_id text, model_key text, customer_id text,
                                          features jsonb, offer_ids text[] DEFAULT NULL,
                                          recommendation_id text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ranker    kaireon.algorithm_models;
    v_n         integer := 0;
    v_count     integer;
    s           record;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    SELECT * INTO v_ranker FROM kaireon.algorithm_models m
     WHERE m.tenant_id = log_shadow_scores.tenant_id AND m.key = model_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no model "%"', tenant_id, model_key
            USING ERRCODE = '42704', HINT = 'Check the model key.';
    END IF;
    IF v_ranker.registry_family IS NULL THEN
        RETURN 0;
    END IF;
    FOR s IN SELECT m.id, m.key FROM kaireon.algorithm_models m
              WHERE m.tenant_id = log_shadow_scores.tenant_id AND m.registry_family = v_ranker.registry_family
                AND m.registry_status = 'shadow' AND m.id <> v_ranker.id AND m.model_state <> '{}'
    LOOP
        INSERT INTO kaireon.model_shadow_scores (tenant_id, model_id, customer_id, offer_id, recommendation_id,
                                                 score, ranking_model_id, ranking_score)
        SELECT log_shadow_scores.tenant_id, s.id, customer_id, o, recommendation_id,
               kaireon.score(log_shadow_scores.tenant_id, s.key, features, o),
               v_ranker.id,
               CASE WHEN v_ranker.model_state <> '{}' THEN kaireon.score(log_shadow_scores.tenant_id, model_key, features, o) END
          FROM unnest(coalesce(offer_ids, ARRAY[NULL::text])) AS o;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_n := v_n + v_count;
    END LOOP;
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION kaireon.log_shadow_scores(text, text, text, jsonb, text[], text) IS
    'Scores the candidates (offer_ids) of a decision with every shadow model of the ranking model''s family and logs the scores beside the ranking model''s in model_shadow_scores; returns the rows written.';

-- ---------------------------------------------------------------------------------------
-- Experiments
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon.experiment_bucket(experiment_key text, customer_id text)
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_experiment_bucket'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.experiment_bucket(text, text) IS
    'A customer''s position in [0, 100) for an experiment: FNV-1a of experimentKey:customerId modulo 10000, over 100.';

CREATE FUNCTION kaireon.control_bucket(tenant_id text, customer_id text, scope text DEFAULT '')
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_control_bucket_sql'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.control_bucket(text, text, text) IS
    'A customer''s position in [0, 100) for a control group: the experiment bucket (FNV-1a modulo 10000, over 100) of the key kaireon-control:<tenant>:<scope>, scope empty for the tenant''s universal group, flow:<key> for a decision flow''s, offer:<id> for an offer''s holdout. The customer is in the group when the bucket is below its percentage. See docs/lift.md.';

CREATE FUNCTION kaireon.assign_experiment(tenant_id text, experiment_key text, customer_id text,
                                          store boolean DEFAULT true)
    RETURNS TABLE (variant text, model_id text, model_key text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_exp       kaireon.experiments;
    v_bucket    double precision;
    v_cum       double precision;
    v_variant   text;
    c           record;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF customer_id IS NULL OR customer_id = '' THEN
        RAISE EXCEPTION 'customer_id must not be empty' USING ERRCODE = '22023', HINT = 'Pass the customer id.';
    END IF;
    SELECT * INTO v_exp FROM kaireon.experiments e
     WHERE e.tenant_id = assign_experiment.tenant_id AND e.key = experiment_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no experiment "%"', tenant_id, experiment_key
            USING ERRCODE = '42704', HINT = 'Check the experiment key.';
    END IF;
    SELECT a.variant INTO v_variant FROM kaireon.experiment_assignments a
     WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id AND a.customer_id = assign_experiment.customer_id;
    IF NOT FOUND THEN
        IF v_exp.status <> 'running' THEN
            RAISE EXCEPTION 'experiment "%" is %, not running', experiment_key, v_exp.status
                USING ERRCODE = '55000', HINT = 'Set its status to running to assign customers.';
        END IF;
        v_bucket := kaireon.experiment_bucket(experiment_key, customer_id);
        IF v_bucket < v_exp.holdout_percent THEN
            v_variant := 'holdout';
        ELSE
            v_cum := v_exp.holdout_percent;
            FOR c IN SELECT m.key, ch.traffic_pct FROM kaireon.experiment_challengers ch
                       JOIN kaireon.algorithm_models m ON m.tenant_id = ch.tenant_id AND m.id = ch.model_id
                      WHERE ch.tenant_id = v_exp.tenant_id AND ch.experiment_id = v_exp.id
                      ORDER BY m.key LOOP
                v_cum := v_cum + c.traffic_pct;
                IF v_bucket < v_cum THEN
                    v_variant := 'challenger:' || c.key;
                    EXIT;
                END IF;
            END LOOP;
            v_variant := coalesce(v_variant, 'champion');
        END IF;
        -- without store (a dry run): the variant the customer would get, not stored
        IF store THEN
            INSERT INTO kaireon.experiment_assignments AS a (tenant_id, customer_id, experiment_id, variant)
            VALUES (v_exp.tenant_id, customer_id, v_exp.id, v_variant)
            ON CONFLICT ON CONSTRAINT experiment_assignments_tenant_id_experiment_id_customer_id_key DO NOTHING
            RETURNING a.variant INTO v_variant;
            IF NOT FOUND THEN
                -- a concurrent call assigned the customer first: use its row
                SELECT a.variant INTO v_variant FROM kaireon.experiment_assignments a
                 WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id
                   AND a.customer_id = assign_experiment.customer_id;
            END IF;
        END IF;
    END IF;
    variant := v_variant;
    IF v_variant = 'champion' THEN
        SELECT m.id, m.key INTO model_id, model_key FROM kaireon.algorithm_models m
         WHERE m.tenant_id = v_exp.tenant_id AND m.id = v_exp.champion_model_id;
    ELSIF v_variant LIKE 'challenger:%' THEN
        SELECT m.id, m.key INTO model_id, model_key FROM kaireon.algorithm_models m
         WHERE m.tenant_id = v_exp.tenant_id AND m.key = substr(v_variant, 12);
    END IF;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION kaireon.assign_experiment(text, text, text, boolean) IS
    'Sticky assignment of a customer to a running experiment: holdout (the first holdout_percent of FNV-1a buckets), a challenger (its traffic_pct, challengers by model key), else the champion; stored in experiment_assignments (unless store is false, as in a dry run), so later calls return the same variant. Holdout customers get the control treatment: no model (model_id NULL), recommend''s fallback scoring.';

-- An experiment's split, {name: weight, ...}: kaireon.assign_variant's variants and a flow A/B
-- test's traffic_split.flows (87_lift.sql). _split_weights checks it (the one place its rule
-- is written) and gives the arms in the order of the split protocol (src/scoring/experiment.c:
-- by name in C collation); _split_arm is the customer's arm under them, the C rule recommend
-- uses for flow A/B tests.
CREATE FUNCTION kaireon_internal._split_weights(experiment_key text, split jsonb)
    RETURNS TABLE (arm text, weight double precision)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_total     double precision := 0;
    r           record;
BEGIN
    IF split IS NULL OR jsonb_typeof(split) <> 'object' OR split = '{}' THEN
        RAISE EXCEPTION 'experiment "%": the split must be a non-empty object of arm names and weights, not %',
                        experiment_key, coalesce(split::text, 'null')
            USING ERRCODE = '22023', HINT = 'For example {"A": 50, "B": 50}.';
    END IF;
    FOR r IN SELECT a.key, a.value FROM jsonb_each(split) a ORDER BY a.key COLLATE "C" LOOP
        -- a weight beyond double precision (1e400) is refused by name here; a total that
        -- overflows (two of 1e308) fails the float8 addition below with 22003
        IF (CASE WHEN jsonb_typeof(r.value) <> 'number' THEN true
                 ELSE r.value::text::numeric < 0 OR NOT kaireon_internal._is_finite(r.value::text::numeric) END) THEN
            RAISE EXCEPTION 'experiment "%": arm "%" has weight %, not a non-negative finite number', experiment_key, r.key,
                CASE WHEN length(r.value::text) > 32 THEN left(r.value::text, 32) || '...' ELSE r.value::text END
                USING ERRCODE = '22023', HINT = 'Weights are non-negative numbers, in any unit (shares of their sum).';
        END IF;
        arm := r.key;
        weight := r.value::text::double precision;
        v_total := v_total + weight;
        RETURN NEXT;
    END LOOP;
    IF v_total <= 0 THEN
        RAISE EXCEPTION 'experiment "%": the arms'' weights add up to 0', experiment_key
            USING ERRCODE = '22023', HINT = 'Give some arm a weight.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._split_weights(text, jsonb) IS
    'Internal: the arms of an experiment''s split {name: weight} by name in C collation, with their weights; refuses (22023, naming the experiment and arm) a split that is not a non-empty object, a weight that is not a non-negative finite number, and weights adding up to 0. Used by kaireon.assign_variant and the flow A/B test check.';

CREATE FUNCTION kaireon_internal._split_arm(experiment_key text, customer_id text, weights double precision[])
    RETURNS integer
    AS 'MODULE_PATHNAME', 'kaireon_split_arm_sql'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._split_arm(text, text, double precision[]) IS
    'Internal: the 1-based position of a customer''s arm among the weights _split_weights gives: the first whose cumulated weight exceeds experiment_bucket * total / 100 (the rule recommend uses for flow A/B tests).';

CREATE FUNCTION kaireon.assign_variant(tenant_id text, experiment_key text, customer_id text,
                                       variants jsonb, ttl interval DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name      text;
    v_arms      text[];
    v_weights   double precision[];
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF customer_id IS NULL OR customer_id = '' OR experiment_key IS NULL OR experiment_key = '' THEN
        RAISE EXCEPTION 'experiment_key and customer_id must not be empty' USING ERRCODE = '22023',
            HINT = 'Pass both.';
    END IF;
    SELECT array_agg(s.arm ORDER BY s.n), array_agg(s.weight ORDER BY s.n) INTO v_arms, v_weights
      FROM kaireon_internal._split_weights(experiment_key, variants) WITH ORDINALITY AS s (arm, weight, n);
    SELECT a.variant_name INTO v_name FROM kaireon.variant_assignments a
     WHERE a.tenant_id = assign_variant.tenant_id AND a.experiment_key = assign_variant.experiment_key
       AND a.customer_id = assign_variant.customer_id AND (a.expires_at IS NULL OR a.expires_at > now());
    IF FOUND THEN
        RETURN v_name;
    END IF;
    v_name := v_arms[kaireon_internal._split_arm(experiment_key, customer_id, v_weights)];
    INSERT INTO kaireon.variant_assignments AS a (tenant_id, customer_id, experiment_key, variant_name, assigned_at, expires_at)
    VALUES (tenant_id, customer_id, experiment_key, v_name, now(), now() + ttl)
    ON CONFLICT ON CONSTRAINT variant_assignments_tenant_id_experiment_key_customer_id_key
    DO UPDATE SET variant_name = EXCLUDED.variant_name, assigned_at = EXCLUDED.assigned_at,
                  expires_at = EXCLUDED.expires_at
          WHERE a.expires_at IS NOT NULL AND a.expires_at <= now();
    SELECT a.variant_name INTO v_name FROM kaireon.variant_assignments a
     WHERE a.tenant_id = assign_variant.tenant_id AND a.experiment_key = assign_variant.experiment_key
       AND a.customer_id = assign_variant.customer_id;
    RETURN v_name;
END
$fn$;
COMMENT ON FUNCTION kaireon.assign_variant(text, text, text, jsonb, interval) IS
    'Sticky assignment of a customer to a named variant of an A/B test identified by key (variants: names and non-negative weights, checked by kaireon_internal._split_weights), by FNV-1a of experimentKey:customerId and the rule flow A/B tests use (kaireon_internal._split_arm: variants by name in C collation); stored in variant_assignments, expiring after ttl (then reassigned).';

CREATE FUNCTION kaireon.wilson_interval(successes double precision, trials double precision,
                                        z double precision DEFAULT 1.959963984540054)
    RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN trials > 0 THEN ARRAY[
        ((successes / trials) + z * z / (2 * trials)
          - z * sqrt((successes / trials) * (1 - successes / trials) / trials + z * z / (4 * trials * trials)))
          / (1 + z * z / trials),
        ((successes / trials) + z * z / (2 * trials)
          + z * sqrt((successes / trials) * (1 - successes / trials) / trials + z * z / (4 * trials * trials)))
          / (1 + z * z / trials)] END;
COMMENT ON FUNCTION kaireon.wilson_interval(double precision, double precision, double precision) IS
    'Wilson score interval [low, high] of a proportion successes/trials (default 95%).';

CREATE FUNCTION kaireon.experiment_results(tenant_id text, experiment_key text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_exp       kaireon.experiments;
    v_variants  jsonb := '{}';
    v_tests     jsonb := '[]';
    v_result    jsonb;
    c           record;
    r           record;
    p_pool      double precision;
    se          double precision;
    z           double precision;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    SELECT * INTO v_exp FROM kaireon.experiments e
     WHERE e.tenant_id = experiment_results.tenant_id AND e.key = experiment_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no experiment "%"', tenant_id, experiment_key
            USING ERRCODE = '42704', HINT = 'Check the experiment key.';
    END IF;
    -- a variant's trials: its customers who had a positive or negative outcome after assignment;
    -- successes: those with a positive outcome
    FOR r IN
        WITH outcomes AS (
            SELECT a.variant, a.customer_id,
                   bool_or(coalesce(ot.classification, CASE WHEN ih.outcome_type_key IN ('click', 'conversion', 'share', 'save') THEN 'positive'
                                                            WHEN ih.outcome_type_key IN ('not_interested', 'opt_out', 'dismiss', 'complaint') THEN 'negative' END) = 'positive') AS converted,
                   bool_or(coalesce(ot.classification, CASE WHEN ih.outcome_type_key IN ('click', 'conversion', 'share', 'save') THEN 'positive'
                                                            WHEN ih.outcome_type_key IN ('not_interested', 'opt_out', 'dismiss', 'complaint') THEN 'negative' END) IN ('positive', 'negative')) AS reached
              FROM kaireon.experiment_assignments a
              JOIN kaireon.interaction_history ih
                ON ih.tenant_id = a.tenant_id AND ih.customer_id = a.customer_id
               AND ih.interaction_type = 'outcome' AND ih.occurred_at >= a.assigned_at
               AND (v_exp.ended_at IS NULL OR ih.occurred_at < v_exp.ended_at)
              LEFT JOIN kaireon.outcome_types ot
                ON ot.tenant_id = ih.tenant_id AND ot.key = ih.outcome_type_key AND ot.deleted_at IS NULL
             WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id
             GROUP BY a.variant, a.customer_id)
        SELECT v.variant,
               (SELECT count(*) FROM kaireon.experiment_assignments a
                 WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id AND a.variant = v.variant) AS assigned,
               count(*) FILTER (WHERE o.reached) AS trials,
               count(*) FILTER (WHERE o.reached AND o.converted) AS successes
          FROM (SELECT DISTINCT a.variant FROM kaireon.experiment_assignments a
                 WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id) v
          LEFT JOIN outcomes o ON o.variant = v.variant
         GROUP BY v.variant
    LOOP
        v_variants := v_variants || jsonb_build_object(r.variant, jsonb_build_object(
            'assigned', r.assigned, 'trials', r.trials, 'successes', r.successes,
            'rate', CASE WHEN r.trials > 0 THEN r.successes::double precision / r.trials END,
            'wilson95', to_jsonb(kaireon.wilson_interval(r.successes, r.trials))));
    END LOOP;
    -- two-proportion z-test of each challenger against the champion
    FOR c IN SELECT key AS variant, value FROM jsonb_each(v_variants) WHERE key LIKE 'challenger:%' ORDER BY key LOOP
        IF v_variants ? 'champion' AND (c.value->>'trials')::double precision > 0
           AND (v_variants->'champion'->>'trials')::double precision > 0 THEN
            p_pool := ((c.value->>'successes')::double precision + (v_variants->'champion'->>'successes')::double precision)
                      / ((c.value->>'trials')::double precision + (v_variants->'champion'->>'trials')::double precision);
            se := sqrt(p_pool * (1 - p_pool) * (1 / (c.value->>'trials')::double precision
                                               + 1 / (v_variants->'champion'->>'trials')::double precision));
            z := CASE WHEN se > 0 THEN ((c.value->>'rate')::double precision - (v_variants->'champion'->>'rate')::double precision) / se ELSE 0 END;
            v_tests := v_tests || jsonb_build_object(
                'challenger', substr(c.variant, 12), 'z', z,
                -- the upper tail as normal_cdf(-|z|) (an erfc): 1 - cdf(|z|) would round to 0 past |z| = 8.3
                'pValue', 2 * kaireon.normal_cdf(-abs(z)),
                'confidence', kaireon.normal_cdf(z),
                'lift', (c.value->>'rate')::double precision - (v_variants->'champion'->>'rate')::double precision);
        END IF;
    END LOOP;
    v_result := jsonb_build_object('variants', v_variants, 'tests', v_tests, 'computedAt', now());
    UPDATE kaireon.experiments e SET results = v_result WHERE e.tenant_id = v_exp.tenant_id AND e.id = v_exp.id;
    RETURN v_result;
END
$fn$;
COMMENT ON FUNCTION kaireon.experiment_results(text, text) IS
    'Per variant: customers assigned, customers with an outcome (trials), with a positive one (successes), rate and Wilson 95% interval; per challenger: two-proportion z-test against the champion (z, two-sided pValue, one-sided confidence that it is better, lift). Stored in experiments.results.';

CREATE FUNCTION kaireon.evaluate_experiment(tenant_id text, experiment_key text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_exp       kaireon.experiments;
    v_results   jsonb;
    v_best      jsonb;
    t           jsonb;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    SELECT * INTO v_exp FROM kaireon.experiments e
     WHERE e.tenant_id = evaluate_experiment.tenant_id AND e.key = experiment_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no experiment "%"', tenant_id, experiment_key
            USING ERRCODE = '42704', HINT = 'Check the experiment key.';
    END IF;
    v_results := kaireon.experiment_results(tenant_id, experiment_key);
    IF NOT v_exp.auto_promote OR v_exp.status <> 'running' THEN
        RETURN jsonb_build_object('promoted', NULL, 'reason', 'auto-promotion is off or the experiment is not running', 'results', v_results);
    END IF;
    IF v_exp.started_at IS NULL OR v_exp.started_at + v_exp.auto_promote_days * interval '24 hours' > now() THEN
        RETURN jsonb_build_object('promoted', NULL, 'reason', format('the experiment has not run %s days yet', v_exp.auto_promote_days), 'results', v_results);
    END IF;
    FOR t IN SELECT value FROM jsonb_array_elements(v_results->'tests') LOOP
        IF (t->>'lift')::double precision > 0 AND (t->>'confidence')::double precision >= v_exp.auto_promote_threshold
           AND (v_best IS NULL OR (t->>'confidence')::double precision > (v_best->>'confidence')::double precision) THEN
            v_best := t;
        END IF;
    END LOOP;
    IF v_best IS NULL THEN
        RETURN jsonb_build_object('promoted', NULL, 'reason', format('no challenger beats the champion with confidence >= %s', v_exp.auto_promote_threshold), 'results', v_results);
    END IF;
    IF kaireon.four_eyes_required(tenant_id) THEN
        -- the promotion is filed for approval (once; by kaireon.user_id, when set), and the
        -- experiment runs on until it is applied, which completes it
        IF EXISTS (SELECT 1 FROM kaireon.approval_requests r JOIN kaireon.algorithm_models m
                     ON m.tenant_id = r.tenant_id AND m.id = r.entity_id
                    WHERE r.tenant_id = v_exp.tenant_id AND r.action = 'model.promote' AND r.status = 'pending'
                      AND m.key = v_best->>'challenger') THEN
            RETURN jsonb_build_object('promoted', NULL, 'reason', 'challenger beat the champion; its promotion awaits approval (four-eyes)',
                                      'test', v_best, 'results', v_results);
        END IF;
        IF nullif(current_setting('kaireon.user_id', true), '') IS NULL THEN
            RETURN jsonb_build_object('promoted', NULL, 'reason', 'challenger beat the champion; with four-eyes on, set kaireon.user_id to file its promotion',
                                      'test', v_best, 'results', v_results);
        END IF;
        PERFORM kaireon.transition_model(tenant_id, v_best->>'challenger', 'champion');
        RETURN jsonb_build_object('promoted', NULL, 'reason', 'challenger beat the champion; its promotion awaits approval (four-eyes)',
                                  'test', v_best, 'results', v_results);
    END IF;
    PERFORM kaireon.transition_model(tenant_id, v_best->>'challenger', 'champion');
    UPDATE kaireon.experiments e SET status = 'completed', ended_at = now(),
           champion_model_id = (SELECT m.id FROM kaireon.algorithm_models m WHERE m.tenant_id = v_exp.tenant_id AND m.key = v_best->>'challenger')
     WHERE e.tenant_id = v_exp.tenant_id AND e.id = v_exp.id;
    RETURN jsonb_build_object('promoted', v_best->>'challenger', 'reason', 'challenger beat the champion', 'test', v_best, 'results', v_results);
END
$fn$;
COMMENT ON FUNCTION kaireon.evaluate_experiment(text, text) IS
    'Computes the results and, when auto_promote is on, the experiment has run auto_promote_days and a challenger beats the champion with one-sided confidence >= auto_promote_threshold, promotes the best one to champion (archiving the old champion) and completes the experiment.';
