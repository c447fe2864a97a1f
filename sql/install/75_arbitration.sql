-- kaireon install script, part 75: arbitration (docs/arbitration.md): validation of
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

-------------------------------------------------------------------------------
-- Batch campaigns
-------------------------------------------------------------------------------

CREATE TABLE kaireon.campaign_decisions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
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
