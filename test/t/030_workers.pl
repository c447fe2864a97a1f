# The background workers (docs/workers.md): with kaireon preloaded, the launcher starts one
# maintenance worker per database of kaireon.databases; each runs the jobs on their schedules.
# Checked here: both databases are served; retention runs on schedule; SIGHUP changes a
# schedule; kill -9 of a worker in the middle of a purge, then the crash restart, and the
# worker finishes the purge (interrupted run found at start) without losing a row that must
# stay; no transaction is held across the pauses between batches; SIGTERM stops a worker
# cleanly and the launcher starts it again; a database removed from the list loses its
# worker; the workers exit when the postmaster dies. Also pg_cron running kaireon's
# maintenance in a database, and settings of every module kept from postgresql.conf.
# Fixes from review: a cancel does not stop the launcher; a terminated launcher comes back
# (exit 1) without doubling the workers; a 'running' row whose pid was reused is recovered;
# a second worker for a database exits (worker lock); the worker skips a job running
# elsewhere and a manual run waits for it; a worker role without BYPASSRLS is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'kaireon,pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
restart_after_crash = on
kaireon.databases = 'db1, db2'
kaireon.worker_restart_delay = 1
kaireon.retention_schedule = 'off'
kaireon.partition_schedule = 'off'
kaireon.outbox_schedule = '300ms'
kaireon.summary_schedule = 'off'
kaireon.volume_reset_schedule = 'off'
kaireon.suppression_schedule = 'off'
kaireon.score_schedule = 'off'
kaireon.dual_price_schedule = 'off'
kaireon.retention_batch_size = 500
kaireon.retention_batch_delay = 100
kaireon.adaptation_refresh_ms = 1234
});
$node->start;

# Settings of every module keep their postgresql.conf values (the kaireon. prefix is reserved
# only after all of them are defined).
is($node->safe_psql('postgres', 'SHOW kaireon.adaptation_refresh_ms'), '1234ms',
	'a setting defined by the recommend cache keeps its postgresql.conf value');
is($node->safe_psql('postgres', 'SHOW kaireon.retention_batch_size'), '500',
	'a retention setting keeps its postgresql.conf value');
unlike(slurp_file($node->logfile), qr/invalid configuration parameter name "kaireon\./,
	'no kaireon setting was dropped as unknown');

for my $db (qw(db1 db2 crondb))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION kaireon');
}

# pg_cron: kaireon's maintenance scheduled in another database (checked at the end: pg_cron
# runs jobs at minute boundaries).
$node->safe_psql('crondb', q{
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('t', 'T', 't');
    INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope, expires_at)
        VALUES ('t', 'expired', 'c', 'global', now() - interval '1 hour');
    INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('t', 'ev', 'x');
});
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres',
	q{SELECT cron.schedule_in_database('kaireon-maintenance', '* * * * *', 'SELECT count(*) FROM kaireon.run_maintenance()', 'crondb')});

# One worker per listed database.
ok( $node->poll_query_until('postgres',
		q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'},
		'db1,db2'),
	'the launcher started one worker for each database of kaireon.databases');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kaireon launcher'}),
	'1', 'one launcher');

# The worker pids of each database ("db=pid,..."), and the launcher's pid.
sub worker_pids
{
	return $node->safe_psql('postgres',
		q{SELECT coalesce(string_agg(datname || '=' || pid, ',' ORDER BY datname, pid), '') FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'});
}
sub launcher_pid
{
	return $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon launcher'});
}

# A cancel (pg_cancel_backend) does not stop the launcher: it used to exit on it and come back
# with no memory of its workers, starting a second worker for each database.
my $launcher = launcher_pid();
my $workers_before = worker_pids();
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($launcher)");
sleep 2;
is(launcher_pid(), $launcher, 'a cancel does not stop the launcher');
is(worker_pids(), $workers_before, 'and the workers are the same, one per database');
unlike(slurp_file($node->logfile, $log_offset), qr/"kaireon launcher".*exited/, 'the launcher did not exit');

# pg_terminate_backend(launcher): it stops its workers and exits with code 1, so the postmaster
# starts it again (5 s later), and it starts one worker per database, no more.
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
$node->wait_for_log(qr/kaireon launcher: shutdown requested; stopping the workers/, $log_offset);
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kaireon launcher' AND pid <> $launcher}),
	'the terminated launcher is started again');
ok( $node->poll_query_until('postgres',
		q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'},
		'db1,db2'),
	'the new launcher started the workers again');
sleep 2;
is( $node->safe_psql('postgres',
		q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'}),
	'db1,db2', 'one worker per database after the launcher restart');
my %old = map { $_ => 1 } split /,/, $workers_before;
ok(!grep({ $old{$_} } split /,/, worker_pids()), 'the old workers are gone');

# Both databases are served: an outbox event of each is published by its worker.
for my $db (qw(db1 db2))
{
	$node->safe_psql($db, q{
        INSERT INTO kaireon.tenants (id, name, slug) VALUES ('t', 'T', 't');
        INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('t', 'ev1', 'x');
    });
	ok($node->poll_query_until($db, q{SELECT status FROM kaireon.outbox_events WHERE id = 'ev1'}, 'published'),
		"the worker of $db publishes its outbox");
	is($node->safe_psql($db, q{SELECT source || ' ' || status FROM kaireon.maintenance_runs WHERE job = 'outbox'}),
		'worker succeeded', "the run is in the history of $db");
}
# (pg_cron may publish crondb's event at any minute boundary: count the worker's runs instead)
is($node->safe_psql('crondb', q{SELECT count(*) FROM kaireon.maintenance_runs WHERE source = 'worker'}),
	'0', 'a database not in kaireon.databases has no worker');

# Retention on schedule, in both databases: a schedule set with ALTER SYSTEM takes effect on
# SIGHUP (pg_reload_conf).
for my $db (qw(db1 db2))
{
	$node->safe_psql($db, q{
        SELECT count(*) FROM kaireon.create_interaction_partitions(0, (now() - interval '30 months')::date);
        INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type)
            SELECT 't', now() - interval '30 months' + make_interval(secs => i), 'c', 'impression'
              FROM generate_series(1, 100) i;
        INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('t', 'recent', 'impression');
    });
}
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.retention_schedule = '1s'; SELECT pg_reload_conf()});
for my $db (qw(db1 db2))
{
	ok( $node->poll_query_until($db,
			q{SELECT count(*) > 0 FROM kaireon.maintenance_runs WHERE job = 'retention' AND source = 'worker' AND trigger = 'schedule' AND status = 'succeeded'}),
		"retention ran on schedule in $db");
	is($node->safe_psql($db, q{SELECT string_agg(customer_id, ',') FROM kaireon.interaction_history}),
		'recent', "$db: the expired month is gone, the recent row stays");
}
$node->wait_for_log(qr/kaireon worker: job retention now runs on schedule "1s"/, $log_offset);
ok(1, 'the worker logged the new schedule');

# SIGHUP turns it off again: no more runs.
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.retention_schedule = 'off'; SELECT pg_reload_conf()});
$node->wait_for_log(qr/job retention now runs on schedule "off"/, $log_offset);
$node->wait_for_log(qr/job retention now runs on schedule "off"(?s:.*)job retention now runs on schedule "off"/, $log_offset);
my $runs = $node->safe_psql('db1', q{SELECT count(*) FROM kaireon.maintenance_runs WHERE job = 'retention'});
sleep 3;
is($node->safe_psql('db1', q{SELECT count(*) FROM kaireon.maintenance_runs WHERE job = 'retention'}),
	$runs, 'after SIGHUP with schedule off, retention no longer runs');

# kill -9 of the worker in the middle of a purge. Tenant "old" (default 730 days) has 40,000
# expired rows in a month it shares with tenant "keep" (10 years), so they are deleted row by
# row, 500 per batch with 100 ms pauses.
$node->safe_psql('db1', q{
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('old', 'Old', 'old'), ('keep', 'Keep', 'keep');
    INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('keep', 'interactions', 3650);
    SELECT count(*) FROM kaireon.create_interaction_partitions(0, (now() - interval '29 months')::date);
    INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type)
        SELECT CASE WHEN i % 80 = 0 THEN 'keep' ELSE 'old' END, now() - interval '29 months' + make_interval(secs => i),
               'c' || i, 'impression'
          FROM generate_series(1, 40500) i;
    ANALYZE kaireon.interaction_history;
});
is($node->safe_psql('db1', q{SELECT string_agg(tenant_id || '=' || n, ',' ORDER BY tenant_id) FROM (SELECT tenant_id, count(*) AS n FROM kaireon.interaction_history WHERE tenant_id IN ('old', 'keep') GROUP BY 1) x}),
	'keep=506,old=39994', 'the rows before the purge');
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.retention_schedule = '1s'; SELECT pg_reload_conf()});
ok( $node->poll_query_until('db1',
		q{SELECT (detail ->> 'rowsDeleted')::bigint >= 2000 FROM kaireon.maintenance_runs WHERE job = 'retention' AND status = 'running' ORDER BY id DESC LIMIT 1}),
	'a purge is under way');
my $run_id = $node->safe_psql('db1', q{SELECT max(id) FROM kaireon.maintenance_runs WHERE job = 'retention' AND status = 'running'});

# Between batches the worker holds no transaction (and so no lock): sample it while it purges.
my $worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'db1'});
my $idle_samples = 0;
for (1 .. 30)
{
	$idle_samples++ if $node->safe_psql('postgres',
		qq{SELECT xact_start IS NULL AND NOT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $worker AND locktype = 'relation')
             FROM pg_stat_activity WHERE pid = $worker}) eq 't';
	usleep(50_000);
}
cmp_ok($idle_samples, '>', 0, "the worker held no transaction or lock in $idle_samples of 30 samples during the purge");

# The next scheduled run is a day away: only the recovery of the interrupted run can finish it.
my @t = gmtime(time - 3600);
my $daily = sprintf('%02d:%02d', $t[2], $t[1]);
$node->safe_psql('postgres', qq{ALTER SYSTEM SET kaireon.retention_schedule = '$daily'; SELECT pg_reload_conf()});
is($node->safe_psql('db1', qq{SELECT status FROM kaireon.maintenance_runs WHERE id = $run_id}), 'running',
	'the purge is still running');
$log_offset = -s $node->logfile;
kill 'KILL', $worker;
$node->wait_for_log(qr/terminating any other active server processes/, $log_offset);
ok($node->poll_query_until('db1', 'SELECT 1', '1'), 'the server is back after the crash restart');
ok( $node->poll_query_until('db1',
		q{SELECT count(*) > 0 FROM kaireon.maintenance_runs WHERE job = 'retention' AND trigger = 'recovery' AND status = 'succeeded'}),
	'the restarted worker ran the interrupted retention again');
is($node->safe_psql('db1', qq{SELECT status FROM kaireon.maintenance_runs WHERE id = $run_id}), 'interrupted',
	'the killed run is marked interrupted');
is($node->safe_psql('db1', q{SELECT string_agg(tenant_id || '=' || n, ',' ORDER BY tenant_id) FROM (SELECT tenant_id, count(*) AS n FROM kaireon.interaction_history WHERE tenant_id IN ('old', 'keep') GROUP BY 1) x}),
	'keep=506', 'the purge finished: every expired row is gone and every row that must stay is there');
like(slurp_file($node->logfile, $log_offset), qr/run \d+ of job retention \(worker\) was interrupted; running it again/,
	'the worker logged the recovery');

# SIGTERM stops a worker cleanly; the launcher starts it again. Before: two 'running' rows of
# procedures whose pid is the launcher's, as if a crash restart had given the pid to it; the one
# that started before the launcher is dead (the pid was reused) and the next worker marks it
# interrupted; the one that started after is left alone.
$launcher = launcher_pid();
$node->safe_psql('db2', qq{
    INSERT INTO kaireon.maintenance_runs (job, source, pid, started_at) VALUES
        ('scores', 'procedure', $launcher, now() - interval '1 day'),
        ('summaries', 'procedure', $launcher, clock_timestamp() + interval '1 second');
});
$worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'db2'});
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker)");
$node->wait_for_log(qr/terminating background worker "kaireon maintenance[^"]*" due to administrator command/,
	$log_offset);
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'db2' AND pid <> $worker}),
	'the launcher started the worker again');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/the worker of database "db2" stopped; restarting it in \d+ s/, 'the launcher logged the restart');
unlike($log, qr/terminated by signal|server process .* was terminated/, 'a clean stop, not a crash');
ok( $node->poll_query_until('db2', q{SELECT status FROM kaireon.maintenance_runs WHERE job = 'scores' AND source = 'procedure'},
		'interrupted'),
	'a running row whose pid now belongs to a process started after it is marked interrupted');
is($node->safe_psql('db2', q{SELECT status FROM kaireon.maintenance_runs WHERE job = 'summaries' AND source = 'procedure'}),
	'running', 'a running row of a live process is left alone');
$node->safe_psql('db2', q{DELETE FROM kaireon.maintenance_runs WHERE source = 'procedure'});

# One worker per database: a worker exits when another process holds the worker lock of its
# database (a worker left behind by a launcher that died; here a session standing for it).
# The session queues for the lock, then the worker is stopped: the session gets it first.
$worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'db1'});
is( $node->safe_psql('db1',
		qq{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1801546098 AND objid = 0 AND granted AND pid = $worker}),
	'1', 'the worker of db1 holds the worker lock of its database');
my $bg = $node->background_psql('db1');
my $bgpid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_until(qr/queued/, "\\echo queued\nSELECT pg_advisory_lock(1801546098, 0);\n");
ok( $node->poll_query_until('db1',
		qq{SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 0 AND NOT granted AND pid = $bgpid}),
	'a session waits for the worker lock');
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker)");
ok( $node->poll_query_until('db1',
		qq{SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 0 AND granted AND pid = $bgpid}),
	'the session has it once the worker stopped');
$node->wait_for_log(qr/kaireon worker: another process \(pid $bgpid\) holds the maintenance lock of database "db1"; exiting/,
	$log_offset);
ok(1, 'a second worker for db1 exits, naming the process that holds the lock');
$bg->query_safe('SELECT pg_advisory_unlock(1801546098, 0)');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'db1'}),
	'the worker of db1 runs again once the lock is free');

# A job running elsewhere is skipped by the worker (a long job records the skipped run), and a
# manual run of it waits (within lock_timeout, 55P03).
$bg->query_safe('SELECT pg_advisory_lock(1801546098, 2)');    # job 2: partitions
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.partition_schedule = '1s'; SELECT pg_reload_conf()});
ok( $node->poll_query_until('db1',
		qq{SELECT count(*) > 0 FROM kaireon.maintenance_runs WHERE job = 'partitions' AND status = 'skipped' AND source = 'worker'
             AND detail ->> 'skipped' = 'running elsewhere' AND (detail ->> 'heldBy')::int = $bgpid}),
	'the worker skips partitions while another process runs it, and records why');
is($node->safe_psql('db1', q{SELECT count(*) FROM kaireon.maintenance_runs WHERE job = 'partitions' AND status <> 'skipped'}),
	'0', 'it did not run partitions');
my ($ret, $out, $err) = $node->psql('db1',
	q{SET lock_timeout = '200ms'; SELECT * FROM kaireon.run_maintenance(jobs => '{partitions}')},
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/55P03.*lock timeout(?s:.*)waiting for maintenance job partitions/, 'a manual run waits for it (55P03 after lock_timeout)');
$bg->query_safe('SELECT pg_advisory_unlock(1801546098, 2)');
ok( $node->poll_query_until('db1',
		q{SELECT count(*) > 0 FROM kaireon.maintenance_runs WHERE job = 'partitions' AND status = 'succeeded' AND source = 'worker'}),
	'the worker runs partitions once it is free');
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.partition_schedule = 'off'; SELECT pg_reload_conf()});
$bg->quit;

# A worker role that is neither a superuser nor BYPASSRLS would see no tenant's rows (row level
# security): the worker refuses to run and says why, instead of succeeding at nothing.
$node->safe_psql('postgres', q{CREATE ROLE kaireon_plain LOGIN});
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.worker_role = 'kaireon_plain'; SELECT pg_reload_conf()});
$worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'db1'});
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker)");
$node->wait_for_log(qr/FATAL:  kaireon worker: role "kaireon_plain" cannot maintain database "db1": it is neither a superuser nor has BYPASSRLS/,
	$log_offset);
ok(1, 'a worker whose role lacks BYPASSRLS stops with an error naming the role');
# With BYPASSRLS (and the grants of kaireon.grant_admin_role) the role runs the workers. The
# launcher is restarted rather than waiting out its growing restart delay.
$node->safe_psql($_, q{SELECT kaireon.grant_admin_role('kaireon_plain')}) for qw(db1 db2);
$node->safe_psql('postgres', 'SELECT pg_terminate_backend(' . launcher_pid() . ')');
ok( $node->poll_query_until('postgres',
		q{SELECT string_agg(datname || ' ' || usename, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'},
		'db1 kaireon_plain,db2 kaireon_plain'),
	'with BYPASSRLS the role runs the workers');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET kaireon.worker_role; SELECT pg_reload_conf()});
$node->safe_psql('postgres', 'SELECT pg_terminate_backend(' . launcher_pid() . ')');
ok( $node->poll_query_until('postgres',
		q{SELECT string_agg(datname || ' ' || usename, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'},
		'db1 postgres,db2 postgres'),
	'the workers run as the bootstrap superuser again');

# A database removed from kaireon.databases loses its worker.
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.databases = 'db1'; SELECT pg_reload_conf()});
ok( $node->poll_query_until('postgres',
		q{SELECT string_agg(datname, ',') FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance'}, 'db1'),
	'only db1 keeps a worker');
$node->wait_for_log(qr/kaireon launcher: stopping the worker of database "db2"/, $log_offset);

# pg_cron ran kaireon.run_maintenance in crondb (at the first minute boundary after scheduling).
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM cron.job_run_details WHERE status = 'succeeded'}),
	'pg_cron ran the maintenance job');
is($node->safe_psql('crondb', q{SELECT string_agg(DISTINCT source, ',') FROM kaireon.maintenance_runs}),
	'function', 'crondb: the runs came from kaireon.run_maintenance');
is($node->safe_psql('crondb', q{SELECT (SELECT count(*) FROM kaireon.suppressions) || ' ' || (SELECT status FROM kaireon.outbox_events)}),
	'0 published', 'crondb: the expired suppression is gone and the event published');

# The workers exit when the postmaster dies.
my @pids = split /\n/, $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type IN ('kaireon maintenance', 'kaireon launcher')});
is(scalar @pids, 2, 'a launcher and a worker before the postmaster dies');
$node->kill9;
my $alive = 1;
for (1 .. 300)
{
	$alive = grep { kill(0, $_) } @pids;
	last unless $alive;
	usleep(100_000);
}
is($alive, 0, 'the launcher and the worker exited after the postmaster died');

done_testing();
