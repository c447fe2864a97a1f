# Logical replication of the decisioning configuration (docs/recommend.md, "Logical
# replication"): a subscriber's backends decide with the configuration the publisher changed.
# The apply worker fires no statement trigger (kaireon.config_changed) and only triggers
# enabled REPLICA or ALWAYS, so the subscriber's cached configurations were never invalidated:
# a backend kept deciding with the offers it had compiled. Checked here, with the
# configuration tables and config_versions published (the subscriber writes nothing of its
# own, so nothing conflicts): one subscriber backend decides, the publisher updates an offer,
# inserts one, deletes one, and after each catch-up the same backend's decision follows; a
# counter update (a budget's used impressions) in replica mode fires no invalidation, a
# definition change and a TRUNCATE do; the primary fires none of the REPLICA triggers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'");
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'");
$sub->start;

for my $node ($pub, $sub)
{
	$node->safe_psql('postgres', 'CREATE DATABASE nba');
	$node->safe_psql('nba', 'CREATE EXTENSION kaireon');
}

$pub->safe_psql('nba', q{
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('rep', 'Replicated', 'rep', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('rep', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('rep', 'gold', 'Gold', 'active', 80), ('rep', 'silver', 'Silver', 'active', 70),
    ('rep', 'bronze', 'Bronze', 'active', 60);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('rep', 'gold-web', 'gold', 'web', 'Gold web'), ('rep', 'silver-web', 'silver', 'web', 'Silver web'),
    ('rep', 'bronze-web', 'bronze', 'web', 'Bronze web');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
    VALUES ('rep', 'main', 'main', 'Main', true, '{"maxOffers": 3}');
SELECT kaireon.publish_decision_flow('rep', 'main');
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, period_type, max_impressions)
    VALUES ('rep', 'b1', 'Budget', 'global', 'total', 1000000);
});

# The configuration tables (those with the invalidation triggers) and config_versions.
my $tables = $pub->safe_psql('nba', q{
    SELECT string_agg(DISTINCT format('kaireon.%I', c.relname), ', ')
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE t.tgname LIKE 'config_changed%' AND NOT t.tgisinternal
});
like($tables, qr/kaireon\.offers/, 'the configuration tables are found by their triggers');
$pub->safe_psql('nba', "CREATE PUBLICATION kaireon_config FOR TABLE $tables, kaireon.config_versions");
my $pub_connstr = $pub->connstr . ' dbname=nba';
$sub->safe_psql('nba', "CREATE SUBSCRIPTION kaireon_config CONNECTION '$pub_connstr' PUBLICATION kaireon_config");
$sub->wait_for_subscription_sync($pub, 'kaireon_config', 'nba');

# The invalidation triggers the apply worker fires are enabled REPLICA.
is($pub->safe_psql('nba', q{
    SELECT string_agg(DISTINCT t.tgenabled::text, ',') FROM pg_trigger t
     WHERE t.tgname LIKE 'config_changed_replica%'
}), 'R', 'the replica invalidation triggers are enabled REPLICA only');

# One subscriber backend, kept open across the changes.
my $session = $sub->background_psql('nba', on_error_stop => 1);
my $decide = q{SELECT string_agg(offer_id, ',' ORDER BY rank) FROM kaireon.recommend('rep', 'cust-1', 'web', options => '{"dry_run": true}');};
my $pid = $session->query_safe('SELECT pg_backend_pid();');
is($session->query_safe($decide), 'gold,silver,bronze', 'the subscriber decides with the replicated configuration');

# An UPDATE on the publisher: silver becomes the first offer.
$pub->safe_psql('nba', q{UPDATE kaireon.offers SET priority = 95 WHERE tenant_id = 'rep' AND id = 'silver'});
$pub->wait_for_catchup('kaireon_config');
is($sub->safe_psql('nba', q{SELECT priority FROM kaireon.offers WHERE tenant_id = 'rep' AND id = 'silver'}),
	'95', 'the update is applied on the subscriber');
is($session->query_safe($decide), 'silver,gold,bronze', 'the same subscriber backend decides with the updated offer');

# An INSERT (offer and creative in one transaction) and a DELETE.
$pub->safe_psql('nba', q{
BEGIN;
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('rep', 'platinum', 'Platinum', 'active', 99);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('rep', 'platinum-web', 'platinum', 'web', 'Platinum web');
COMMIT;
});
$pub->wait_for_catchup('kaireon_config');
is($session->query_safe($decide), 'platinum,silver,gold', 'the same backend sees the inserted offer');
$pub->safe_psql('nba', q{DELETE FROM kaireon.creatives WHERE tenant_id = 'rep' AND id = 'platinum-web';
                         DELETE FROM kaireon.offers WHERE tenant_id = 'rep' AND id = 'platinum'});
$pub->wait_for_catchup('kaireon_config');
is($session->query_safe($decide), 'silver,gold,bronze', 'the same backend no longer offers the deleted offer');

# A counted unit (a budget's used impressions) is not a configuration change: under
# session_replication_role = replica (as in the apply worker) its UPDATE fires no REPLICA
# trigger, while a definition change fires one (counted in the transaction's own function
# statistics, pg_stat_xact_user_functions).
my $calls = q{SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = '_config_changed_replica'};
is($sub->safe_psql('nba', qq{
BEGIN;
SET LOCAL track_functions = 'all';
SET LOCAL session_replication_role = replica;
UPDATE kaireon.budget_allocations SET used_impressions = used_impressions + 1, updated_at = now() WHERE tenant_id = 'rep';
$calls;
UPDATE kaireon.budget_allocations SET max_impressions = 2000000 WHERE tenant_id = 'rep';
$calls;
ROLLBACK;
}), "0\n1", 'in replica mode a counter update fires no invalidation trigger; a definition change fires one');

# So does a TRUNCATE in replica mode (its REPLICA statement trigger).
is($sub->safe_psql('nba', qq{
BEGIN;
SET LOCAL track_functions = 'all';
SET LOCAL session_replication_role = replica;
TRUNCATE kaireon.guardrail_rules;
$calls;
ROLLBACK;
}), '1', 'in replica mode a TRUNCATE fires the invalidation trigger');

# The publisher's own writes fire its statement triggers and none of the REPLICA triggers.
is($pub->safe_psql('nba', qq{
BEGIN;
SET LOCAL track_functions = 'all';
UPDATE kaireon.offers SET priority = 99 WHERE tenant_id = 'rep' AND id = 'bronze';
$calls;
SELECT calls FROM pg_stat_xact_user_functions WHERE funcname = 'config_changed';
COMMIT;
}), "0\n1", 'the publisher fires no REPLICA trigger (its statement trigger renews the version)');
$pub->wait_for_catchup('kaireon_config');
is($session->query_safe($decide), 'bronze,silver,gold', 'the same backend decides after a further change');
is($session->query_safe('SELECT pg_backend_pid();'), $pid, 'all the subscriber decisions ran in one backend');

$session->quit;
$sub->stop;
$pub->stop;
done_testing();
