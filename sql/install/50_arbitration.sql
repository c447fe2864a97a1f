-- kaireon install script, part 50: arbitration (docs/arbitration.md): validation of
-- cross-offer constraints, arbitration profiles and run limits; batch campaigns
-- (run_campaign, simulate) and their result table; real-time dual prices and their update;
-- EXP3-IX state.

-- Cross-offer constraints are validated when written: the config by the C validator, the
-- scope by type (a channel quota counts channels, a category cap categories).
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF rule_type, config ON kaireon.cross_offer_constraints
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('cross_offer_constraint', 'rule_type', 'config');
ALTER TABLE kaireon.cross_offer_constraints
    ADD CONSTRAINT cross_offer_constraints_scope_fits_type CHECK (
        (rule_type <> 'channel_quota' OR scope IN ('global', 'channel'))
        AND (rule_type <> 'category_cap' OR scope IN ('global', 'category')));
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF weights ON kaireon.arbitration_profiles
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('arbitration_profile', '', 'weights');
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF volume_constraints ON kaireon.runs
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('run_volume_constraints', '', 'volume_constraints');
-- A campaign's customer query is one plain SELECT, checked when written (and again when it
-- runs, confined to the tenant: src/security/confine.c).
CREATE FUNCTION kaireon_internal._stored_select_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_stored_select_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._stored_select_trigger() IS
    'Internal: BEFORE INSERT OR UPDATE row trigger refusing (22023) a value of the column named by its argument that is not exactly one plain SELECT (no INTO, FOR UPDATE/SHARE or data-modifying WITH); a syntax error is 42601.';
CREATE TRIGGER check_customer_query BEFORE INSERT OR UPDATE OF customer_query ON kaireon.runs
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._stored_select_trigger('customer_query');

-- recommend compiles the active cross-offer constraints (per-response caps, dual prices):
-- a change renews the tenant's configuration version like every other configuration table.
CREATE TRIGGER config_changed_ins AFTER INSERT ON kaireon.cross_offer_constraints
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_upd AFTER UPDATE ON kaireon.cross_offer_constraints
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_del AFTER DELETE ON kaireon.cross_offer_constraints
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.cross_offer_constraints
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.cross_offer_constraints');

-------------------------------------------------------------------------------
-- Batch campaigns
-------------------------------------------------------------------------------

-- No foreign key of its own to kaireon.tenants: the one to campaign_runs (which cascades from
-- the tenant) is enough, and every foreign key costs a check per written row.
CREATE TABLE kaireon.campaign_decisions (
    tenant_id               text NOT NULL,
    campaign_run_id         text NOT NULL,
    customer_id             text NOT NULL,
    rank                    integer NOT NULL CHECK (rank BETWEEN 1 AND 50),
    offer_id                text NOT NULL,
    creative_id             text,
    channel_id              text NOT NULL,
    decision_flow_id        text,
    score                   double precision NOT NULL,
    arbitrated_value        double precision NOT NULL,
    mandatory               boolean NOT NULL DEFAULT false,
    recommendation_id       text NOT NULL,
    interaction_id          text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_run_id, customer_id, rank),
    FOREIGN KEY (tenant_id, campaign_run_id) REFERENCES kaireon.campaign_runs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.campaign_decisions IS
    'kaireon''s own table: the per-customer decisions of a batch campaign run (kaireon.run_campaign), ranked per customer, with the score the pipeline gave, the value net of the dual prices (arbitrated_value) and, unless the run was a simulation, the interaction_history row that records it.';

CREATE FUNCTION kaireon.run_campaign(tenant_id text, run_id text, simulation boolean DEFAULT false)
    RETURNS kaireon.campaign_runs
    AS 'MODULE_PATHNAME', 'kaireon_run_campaign'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_campaign(text, text, boolean) IS
    'Runs a batch campaign (a kaireon.runs row) over its segment or customer query: candidates and scores per customer through the recommend pipeline (dry run), dual prices of every global constraint by Lagrangian relaxation, at most max_offers per customer, written to kaireon.campaign_decisions; unless simulation, also records the interactions and takes the budget and volume units. Returns the kaireon.campaign_runs row (status completed, or failed with the error and no decisions). See docs/arbitration.md.';

CREATE FUNCTION kaireon.simulate(tenant_id text, run_id text DEFAULT NULL, decision_flow_key text DEFAULT NULL,
                                 segment_id text DEFAULT NULL, sample_size integer DEFAULT 1000,
                                 config jsonb DEFAULT '{}', name text DEFAULT NULL)
    RETURNS kaireon.simulation_runs
    AS 'MODULE_PATHNAME', 'kaireon_simulate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.simulate(text, text, text, text, integer, jsonb, text) IS
    'A what-if batch campaign over a sample of customers (first sample_size by FNV-1a hash of the id): the same pipeline and Lagrangian arbitration as run_campaign, from a run definition and/or the arguments (config: channelIds, maxOffers, customerQuery, volumeConstraints, tolerance, maxIterations); writes nothing but its kaireon.simulation_runs row, which it returns. See docs/arbitration.md.';

-------------------------------------------------------------------------------
-- Logging for off-policy evaluation: what each recorded decision was decided with
-------------------------------------------------------------------------------

ALTER TABLE kaireon.interaction_history
    ADD COLUMN selection_probability double precision CHECK (selection_probability > 0 AND selection_probability <= 1),
    ADD COLUMN arbitration_arm integer CHECK (arbitration_arm >= 0),
    ADD COLUMN arbitration_profile_id text,
    ADD COLUMN lambda_version bigint,
    ADD COLUMN policy_version_hash text,
    ADD COLUMN model_version integer;
COMMENT ON COLUMN kaireon.interaction_history.selection_probability IS
    'Recorded decisions of a stochastic policy: the probability with which the policy chose what decided it (the EXP3-IX arm), for off-policy evaluation; NULL for deterministic decisions.';
COMMENT ON COLUMN kaireon.interaction_history.arbitration_arm IS
    'Recorded decisions scored by an EXP3-IX arbitration profile: the arm (index into its weights.arms) drawn.';
COMMENT ON COLUMN kaireon.interaction_history.arbitration_profile_id IS
    'Recorded decisions: the arbitration profile whose PRIE weights scored them.';
COMMENT ON COLUMN kaireon.interaction_history.lambda_version IS
    'Recorded decisions: the version of the real-time dual prices subtracted in ranking (kaireon.dual_price_state.version); NULL when real-time arbitration did not price the decision.';
COMMENT ON COLUMN kaireon.interaction_history.policy_version_hash IS
    'Recorded decisions: the policy snapshot hash (kaireon.policy_snapshots) of the rules, policies and guardrails that decided eligibility.';
COMMENT ON COLUMN kaireon.interaction_history.model_version IS
    'Recorded decisions with a model: algorithm_models.version of model_key when the decision was made.';

-------------------------------------------------------------------------------
-- Real-time dual prices
-------------------------------------------------------------------------------

CREATE TABLE kaireon.dual_prices (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    constraint_key          text NOT NULL,
    constraint_name         text,
    constraint_type         text NOT NULL,
    lambda                  double precision NOT NULL DEFAULT 0 CHECK (lambda >= 0),
    pacing_multiplier       double precision NOT NULL DEFAULT 1 CHECK (pacing_multiplier BETWEEN 0.5 AND 2),
    capacity                double precision NOT NULL,
    consumed                double precision NOT NULL DEFAULT 0,
    target_rate             double precision,
    observed_rate           double precision,
    period_start            timestamptz NOT NULL,
    period_end              timestamptz NOT NULL,
    as_of                   timestamptz NOT NULL,
    version                 bigint NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, constraint_key)
);
COMMENT ON TABLE kaireon.dual_prices IS
    'kaireon''s own table: the real-time dual price (lambda) of each constraint with a limit over a calendar period (cross-offer constraints, budgets, volume constraints), kept by kaireon.update_dual_prices by online dual descent towards the paced target (pacing multiplier in [0.5, 2], rates per hour); recommend subtracts lambda * cost in ranking when the tenant''s realtime_arbitration_enabled is on.';

CREATE TABLE kaireon.dual_price_state (
    tenant_id               text NOT NULL PRIMARY KEY REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    version                 bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    attempted               bigint NOT NULL DEFAULT 0 CHECK (attempted >= 0),
    noops                   bigint NOT NULL DEFAULT 0 CHECK (noops >= 0),
    solver_failed           bigint NOT NULL DEFAULT 0 CHECK (solver_failed >= 0),
    not_converged           bigint NOT NULL DEFAULT 0 CHECK (not_converged >= 0),
    last_run_at             timestamptz,
    last_error              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.dual_price_state IS
    'kaireon''s own table: per tenant, the version of its dual prices (recorded on every decision they priced) and the counters of kaireon.update_dual_prices: updates attempted, no-ops (no price moved), solver failures (the error is in last_error) and updates after which a constraint was still consumed faster than its paced target.';

CREATE FUNCTION kaireon.update_dual_prices()
    RETURNS TABLE (tenant_id text, constraint_key text, lambda double precision, previous_lambda double precision,
                   pacing_multiplier double precision, target_rate double precision, observed_rate double precision,
                   consumed double precision, capacity double precision, version bigint)
    AS 'MODULE_PATHNAME', 'kaireon_update_dual_prices_all'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.update_dual_prices() IS
    'The maintenance step of real-time Lagrangian arbitration: updates the dual prices of every tenant with realtime_arbitration_enabled (that the caller may act for), each in a subtransaction (a failure is counted in dual_price_state.solver_failed and leaves the prices as they were). Run by the maintenance worker, or schedule it with pg_cron. See docs/arbitration.md.';

CREATE FUNCTION kaireon.update_dual_prices(tenant_id text, as_of timestamptz DEFAULT NULL)
    RETURNS TABLE (tenant_id text, constraint_key text, lambda double precision, previous_lambda double precision,
                   pacing_multiplier double precision, target_rate double precision, observed_rate double precision,
                   consumed double precision, capacity double precision, version bigint)
    AS 'MODULE_PATHNAME', 'kaireon_update_dual_prices'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.update_dual_prices(text, timestamptz) IS
    'Updates one tenant''s dual prices by online dual descent as of a time (default the transaction''s start), whether or not its real-time arbitration is on; returns each constraint''s new and previous price, pacing multiplier, target and observed rates (per hour), consumption, capacity and the new version.';

-------------------------------------------------------------------------------
-- EXP3-IX
-------------------------------------------------------------------------------

CREATE TABLE kaireon.exp3_arms (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    profile_id              text NOT NULL,
    arm                     integer NOT NULL CHECK (arm >= 0),
    gain                    double precision NOT NULL DEFAULT 0 CHECK (gain >= 0),
    rewards                 bigint NOT NULL DEFAULT 0 CHECK (rewards >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, profile_id, arm),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES kaireon.arbitration_profiles (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.exp3_arms IS
    'kaireon''s own table: the EXP3-IX state of an arbitration profile with arms: per arm the cumulative importance-weighted reward estimate (gain, sum of 1 / (p + gamma) over rewarded decisions) and the rewards counted; reset when the profile''s weights change.';

CREATE TABLE kaireon.exp3_rewards (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    interaction_id          text NOT NULL,
    profile_id              text NOT NULL,
    arm                     integer NOT NULL CHECK (arm >= 0),
    selection_probability   double precision NOT NULL CHECK (selection_probability > 0 AND selection_probability <= 1),
    reward                  double precision NOT NULL CHECK (reward BETWEEN 0 AND 1),
    estimate                double precision NOT NULL CHECK (estimate >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, interaction_id),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES kaireon.arbitration_profiles (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.exp3_rewards (tenant_id, profile_id);
COMMENT ON TABLE kaireon.exp3_rewards IS
    'kaireon''s own table: the decisions (interaction ids) whose EXP3-IX arm a positive outcome rewarded, with the arm, its probability and the estimate added to its gain; one row per decision, so a decision is rewarded once.';

CREATE FUNCTION kaireon_internal._exp3_reset() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NEW.weights IS DISTINCT FROM OLD.weights THEN
        DELETE FROM kaireon.exp3_arms a WHERE a.tenant_id = NEW.tenant_id AND a.profile_id = NEW.id;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._exp3_reset() IS
    'Internal: AFTER UPDATE trigger on arbitration_profiles: new weights (other arms) start the profile''s EXP3-IX state afresh.';
CREATE TRIGGER exp3_reset AFTER UPDATE OF weights ON kaireon.arbitration_profiles
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._exp3_reset();

CREATE FUNCTION kaireon.exp3_state(tenant_id text, profile_key text)
    RETURNS TABLE (arm integer, weights jsonb, gain double precision, rewards bigint, probability double precision)
    AS 'MODULE_PATHNAME', 'kaireon_exp3_state'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.exp3_state(text, text) IS
    'The arms of an EXP3-IX arbitration profile: each arm''s normalised PRIE weights, gain, rewards and the probability recommend now draws it with.';

CREATE FUNCTION kaireon_internal._assign(score double precision[], nplace integer, slots integer[])
    RETURNS integer[]
    AS 'MODULE_PATHNAME', 'kaireon_assign'
    LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION kaireon_internal._assign(double precision[], integer, integer[]) IS
    'Internal: the optimal joint assignment of a flow graph''s group node (src/arbitration/assign.c) from SQL, for the tests: score holds nplace values per candidate (NULL: not allowed there), slots one count per placement; returns each candidate''s placement (1-based) or 0.';
