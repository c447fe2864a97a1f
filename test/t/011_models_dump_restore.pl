# Models survive pg_dump / pg_restore: a champion, its history of model_versions snapshots,
# approvals, a trained bayesian model and an imported tree model restore into a fresh
# database (the validation, registry and snapshot triggers of algorithm_models fire during the
# restore and must not refuse or duplicate anything), and score the same afterwards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('models_dump');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION kaireon');
$node->safe_psql('src', q{
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('md', 'Models dump', 'md');
    INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, registry_family, model_state) VALUES
      ('md', 'old', 'Old', 'logistic_regression', 'fam', '{"bias": 0, "weights": {"x": 1}}'),
      ('md', 'new', 'New', 'logistic_regression', 'fam', '{"bias": 1, "weights": {"x": 2}}'),
      ('md', 'nb', 'NB', 'bayesian', NULL, '{}');
    UPDATE kaireon.algorithm_models SET predictors = '[{"name": "x", "type": "numeric", "binEdges": [0]}]' WHERE key = 'nb';
    SELECT kaireon.transition_model('md', 'old', 'challenger');
    SELECT kaireon.transition_model('md', 'old', 'champion');
    SELECT kaireon.transition_model('md', 'new', 'challenger');
    INSERT INTO kaireon.model_approvals (tenant_id, model_id, version, status, requested_by, reviewed_by, reviewed_at)
      SELECT 'md', id, version, 'approved', 'alice', 'bob', now() FROM kaireon.algorithm_models WHERE key = 'new';
    SELECT kaireon.transition_model('md', 'new', 'champion');
    SELECT kaireon.model_learn('md', 'nb', NULL, '{"x": 1}', 'positive');
    SELECT kaireon.model_learn('md', 'nb', NULL, '{"x": -1}', 'negative');
    SELECT kaireon.import_model('md', 'trees', 'lightgbm_json',
      '{"max_feature_idx": 0, "objective": "binary sigmoid:1", "feature_names": ["x"],
        "tree_info": [{"tree_structure": {"split_feature": 0, "threshold": 0.5, "decision_type": "<=",
          "missing_type": "NaN", "default_left": true, "left_child": {"leaf_value": -1}, "right_child": {"leaf_value": 1}}}]}');
});

my $census = q{
    SELECT (SELECT string_agg(format('%s %s v%s', key, registry_status, version), ', ' ORDER BY key) FROM kaireon.algorithm_models)
        || ' | ' || (SELECT string_agg(format('%s v%s', m.key, v.version), ', ' ORDER BY m.key, v.version)
                       FROM kaireon.model_versions v JOIN kaireon.algorithm_models m ON m.tenant_id = v.tenant_id AND m.id = v.model_id)
        || ' | ' || (SELECT md5(string_agg(format('%s %s %s %s %s %s', v.model_id, v.version, v.config, v.model_state,
                                                   v.metrics, v.predictors), ';' ORDER BY v.model_id, v.version))
                       FROM kaireon.model_versions v)
        || ' | ' || (SELECT count(*) FROM kaireon.model_approvals)
        || ' | ' || (SELECT string_agg(round(kaireon.score('md', k, '{"x": 1}')::numeric, 6)::text, ', ' ORDER BY k)
                       FROM unnest(ARRAY['nb', 'new', 'old', 'trees']) k)
};
my $before = $node->safe_psql('src', $census);
like($before, qr/nb draft v\d+, new champion v\d+, old archived v\d+/, 'the registry before the dump');

my $dump = $node->basedir . '/models.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ], 'pg_restore');
is($node->safe_psql('dst', $census), $before,
    'models, registry places, versions, snapshots, approvals and scores are the same after restore');
is($node->safe_psql('dst', q{SELECT count(*) FROM kaireon.model_versions}),
   $node->safe_psql('src', q{SELECT count(*) FROM kaireon.model_versions}), 'no snapshot duplicated or lost');

$node->stop;
done_testing();
