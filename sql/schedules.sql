-- Scheduled campaign runs (docs/schedules.md): cron expressions parsed and refused naming the
-- bad field, next times on edges (month ends, leap days, steps, the two day fields); the
-- schedule and file_config checked when written; kaireon.run_schedules with pinned times:
-- once, recurring and cron runs that run when due and not before, nor when paused; a failing
-- run; exports as CSV and JSON into kaireon.campaign_exports and into files of
-- kaireon.export_directory (read back); an export interrupted after N rows resuming without
-- duplicates.
\set VERBOSITY terse
SET timezone = 'UTC';

-- ---- cron expressions ----
SELECT e, a, kaireon.cron_next(e, a::timestamptz) AS next FROM (VALUES
    -- every 15 minutes across a month end
    ('*/15 * * * *', '2030-01-31 23:59:30'),
    -- strictly after: a time on a match moves to the next one
    ('*/15 * * * *', '2030-01-31 23:45:00'),
    -- the 31st skips the months without one
    ('0 0 31 * *', '2030-04-01 00:00'),
    -- a leap day: the next February 29th
    ('0 12 29 2 *', '2030-03-01 00:00'),
    -- new year
    ('0 0 1 1 *', '2030-12-31 23:59'),
    -- quarterly, a step over months
    ('30 6 1 */3 *', '2030-02-10 00:00'),
    -- ranges with a step: minutes 10, 30, 50
    ('10-50/20 * * * *', '2030-01-01 10:31'),
    -- lists and ranges of hours
    ('0 8,12-13 * * *', '2030-01-01 12:30'),
    -- weekdays at 06:00: Friday, then Monday
    ('0 6 * * 1-5', '2030-01-04 05:00'),
    ('0 6 * * 1-5', '2030-01-04 06:00'),
    -- 7 and 0 are both Sunday (2030-01-06)
    ('0 0 * * 7', '2030-01-01 00:00'),
    ('0 0 * * 0', '2030-01-01 00:00'),
    -- both day fields restricted: either matches (the 2nd, a Wednesday, before Friday the 4th)
    ('0 9 2 * 5', '2030-10-01 00:00'),
    -- a day field starting with *: both must match (odd days that are Tuesdays: the 15th)
    ('0 9 */2 * 2', '2030-01-01 10:00'),
    -- a step beyond the range: the start only (minute 0 of each hour)
    ('*/90 * * * *', '2030-01-01 10:01'),
    -- blanks around and between the fields
    ('  5   4  * *  *  ', '2030-01-01 10:00'),
    -- never: February 30th
    ('0 0 30 2 *', '2030-01-01 00:00')
) AS t(e, a);

-- refused, naming the expression and the bad field
SELECT kaireon.cron_next('* * * *', now());
SELECT kaireon.cron_next('* * * * * *', now());
SELECT kaireon.cron_next('', now());
SELECT kaireon.cron_next('@daily', now());
SELECT kaireon.cron_next('60 * * * *', now());
SELECT kaireon.cron_next('00000007 99999 * * *', now());
SELECT kaireon.cron_next('* 24 * * *', now());
SELECT kaireon.cron_next('* * 0 * *', now());
SELECT kaireon.cron_next('* * * 13 *', now());
SELECT kaireon.cron_next('* * * * 8', now());
SELECT kaireon.cron_next('* * * JAN *', now());
SELECT kaireon.cron_next('5/10 * * * *', now());
SELECT kaireon.cron_next('*/0 * * * *', now());
SELECT kaireon.cron_next('10-5 * * * *', now());
SELECT kaireon.cron_next('1,,2 * * * *', now());
SELECT kaireon.cron_next('1, * * * *', now());
SELECT kaireon.cron_next('* 1- * * *', now());
SELECT kaireon.cron_next('0 0 L * *', now());
SELECT kaireon.cron_next('0 0 ? * 1', now());

-- ---- a tenant with a campaign ----
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('sc', 'Schedules', 'sc', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('sc', 'email', 'Email', 'email', 'explicit', 'active'),
    ('sc', 'push', 'Push', 'push', 'explicit', 'inactive');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, weight, value) VALUES
    ('sc', 'o1', 'O1', 'active', 90, 100, 100),
    ('sc', 'o2', 'O2', 'active', 80, 100, 50);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight) VALUES
    ('sc', 'cr1', 'o1', 'email', 'Creative "one"', 100),
    ('sc', 'cr2', 'o2', 'email', 'Creative two', 100);
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('sc', 'f', 'f', 'F', true, '{"score": {"method": "priority_weighted"}}');
SELECT kaireon.publish_decision_flow('sc', 'f');

-- a run in one line (ids masked)
CREATE FUNCTION pg_temp.runs() RETURNS TABLE (id text, schedule_type text, status text, next_run_at timestamptz, runs bigint)
LANGUAGE sql AS $$
    SELECT r.id, r.schedule_type, r.status, r.next_run_at,
           (SELECT count(*) FROM kaireon.campaign_runs c WHERE c.tenant_id = r.tenant_id AND c.campaign_id = r.id)
      FROM kaireon.runs r WHERE r.tenant_id = 'sc' ORDER BY r.id
$$;
-- what the scheduler did, without the generated ids
CREATE FUNCTION pg_temp.tick(at timestamptz)
    RETURNS TABLE (action text, run_id text, slot timestamptz, status text, next_run_at timestamptz, rows bigint, detail text)
LANGUAGE sql AS $$
    SELECT s.action, s.run_id, s.slot, s.status, s.next_run_at, s.rows,
           regexp_replace(s.detail, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>')
      FROM kaireon.run_schedules(at) WITH ORDINALITY s ORDER BY s.action DESC, s.run_id, s.ordinality
$$;

-- ---- the schedule, checked when written ----
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', 'cron');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type, cron_expression)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', 'cron', '0 25 * * *');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type, cron_expression)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', 'cron', '0 0 31 2 *');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', 'recurring');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type, repeat_interval)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', 'recurring', '30 seconds');
-- an interval with a negative part can step back ('1 month -30 days' from February is two
-- days earlier): a slot would be due again at once, so it is refused
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type, repeat_interval, next_run_at)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', 'recurring', '1 month -30 days 1 minute', '2030-02-10 00:00+00');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, file_config)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', '{"format": "csv", "path": "/etc/passwd"}');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, file_config)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', '{"format": "xml"}');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, file_config)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', '{"target": "table"}');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, file_config)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', '{"format": "csv", "target": 1}');
-- a file export needs the directory a superuser sets
SHOW kaireon.export_directory;
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, file_config)
    VALUES ('sc', 'bad', 'Bad', '["email"]', 'SELECT 1', 'active', '{"format": "csv", "target": "file"}');
SET kaireon.export_directory = 'relative/dir';
SET kaireon.export_directory = '/tmp/../etc';
SELECT count(*) AS bad_runs FROM kaireon.runs WHERE tenant_id = 'sc';
-- next_run_at filled when the schedule is written: the next cron minute after now(); now()
-- for once and recurring without one
BEGIN;
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type, cron_expression)
    VALUES ('sc', 'fill', 'Fill', '["email"]', 'SELECT 1', 'draft', 'cron', '0 6 * * 1-5');
SELECT next_run_at = kaireon.cron_next('0 6 * * 1-5', now()) AS cron_filled FROM kaireon.runs WHERE tenant_id = 'sc' AND id = 'fill';
UPDATE kaireon.runs SET cron_expression = '30 7 1 * *' WHERE tenant_id = 'sc' AND id = 'fill';
SELECT next_run_at = kaireon.cron_next('30 7 1 * *', now()) AS cron_refilled FROM kaireon.runs WHERE tenant_id = 'sc' AND id = 'fill';
UPDATE kaireon.runs SET schedule_type = 'once', cron_expression = NULL, next_run_at = NULL WHERE tenant_id = 'sc' AND id = 'fill';
SELECT next_run_at = now() AS once_filled FROM kaireon.runs WHERE tenant_id = 'sc' AND id = 'fill';
-- a next_run_at given is kept
UPDATE kaireon.runs SET schedule_type = 'recurring', repeat_interval = '1 hour', next_run_at = '2030-05-05 05:05+00'
 WHERE tenant_id = 'sc' AND id = 'fill';
SELECT next_run_at FROM kaireon.runs WHERE tenant_id = 'sc' AND id = 'fill';
ROLLBACK;

-- ---- runs, by kind: each runs when due and not before ----
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status,
                          schedule_type, cron_expression, repeat_interval, next_run_at, file_config) VALUES
    ('sc', 'cron', 'Weekdays', 'f', '["email"]', 'SELECT ''c'' || i FROM generate_series(1, 2) i UNION ALL SELECT ''q"u,ote''', 1, 'active',
     'cron', '0 6 * * 1-5', NULL, '2030-01-04 06:00+00', '{"format": "csv"}'),
    ('sc', 'daily', 'Daily', 'f', '["email"]', 'SELECT ''c'' || i FROM generate_series(1, 2) i', 1, 'active',
     'recurring', NULL, '1 day', '2030-01-01 09:00+00', '{"format": "json", "target": "table"}'),
    ('sc', 'once', 'Once', 'f', '["email"]', 'SELECT ''c1''', 2, 'active',
     'once', NULL, NULL, '2030-01-02 12:00+00', '{}'),
    ('sc', 'paused', 'Paused', 'f', '["email"]', 'SELECT ''c1''', 1, 'paused',
     'once', NULL, NULL, '2030-01-01 00:00+00', '{}'),
    ('sc', 'manual', 'Manual', 'f', '["email"]', 'SELECT ''c1''', 1, 'active',
     'manual', NULL, NULL, '2030-01-01 00:00+00', '{}'),
    ('sc', 'broken', 'Broken', 'f', '["push"]', 'SELECT ''c1''', 1, 'active',
     'recurring', NULL, '1 hour', '2030-01-03 00:00+00', '{}');
SELECT * FROM pg_temp.runs();
-- the due runs are read through the partial index on next_run_at
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT tenant_id, id FROM kaireon.runs
 WHERE status = 'active' AND schedule_type IN ('once', 'recurring', 'cron') AND next_run_at <= '2030-01-01'
 ORDER BY next_run_at LIMIT 20;
RESET enable_seqscan;
-- before anything is due: nothing (the manual and the paused runs never)
SELECT * FROM pg_temp.tick('2030-01-01 08:59:59+00');
-- the recurring run is due: it runs, its next slot one interval later
SELECT * FROM pg_temp.tick('2030-01-01 09:00:30+00');
SELECT * FROM pg_temp.tick('2030-01-01 09:01+00');
-- the once run: runs, completes, no next slot
SELECT * FROM pg_temp.tick('2030-01-02 12:00+00');
-- behind by more than one interval: one run, the missed slots not caught up; the broken run
-- fails (an inactive channel), still gets its campaign_runs row and advances
SELECT * FROM pg_temp.tick('2030-01-03 10:15+00');
SELECT * FROM pg_temp.tick('2030-01-03 10:16+00');
-- the cron run: Friday 06:00, then Monday 06:00
SELECT * FROM pg_temp.tick('2030-01-04 05:59+00');
SELECT * FROM pg_temp.tick('2030-01-04 06:00:10+00');
SELECT * FROM pg_temp.runs();
-- every run is a campaign_runs row, with its slot
SELECT campaign_id, run_number, status, summary ->> 'scheduledFor' AS scheduled_for, recommended, error
  FROM kaireon.campaign_runs WHERE tenant_id = 'sc' ORDER BY campaign_id, run_number;
-- a paused run does not run, even when due
UPDATE kaireon.runs SET status = 'paused' WHERE tenant_id = 'sc' AND id = 'cron';
SELECT * FROM pg_temp.tick('2030-01-07 06:00+00');
UPDATE kaireon.runs SET status = 'active' WHERE tenant_id = 'sc' AND id = 'cron';

-- ---- exports into kaireon.campaign_exports ----
-- CSV: a header, then one line per decision in customer and rank order; the JSON lines parse
SELECT c.campaign_id, e.line_number,
       regexp_replace(e.line, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>', 'g') AS line
  FROM kaireon.campaign_exports e JOIN kaireon.campaign_runs c ON c.tenant_id = e.tenant_id AND c.id = e.campaign_run_id
 WHERE c.campaign_id = 'cron' ORDER BY e.line_number;
SELECT c.run_number, e.line_number, e.line::jsonb ->> 'customer_id' AS customer, e.line::jsonb ->> 'offer_id' AS offer,
       (e.line::jsonb ->> 'score')::float8 AS score
  FROM kaireon.campaign_exports e JOIN kaireon.campaign_runs c ON c.tenant_id = e.tenant_id AND c.id = e.campaign_run_id
 WHERE c.campaign_id = 'daily' ORDER BY c.run_number, e.line_number;
SELECT x.export_type LIKE 'campaign_run:%' AS typed, x.format, x.target, x.status, x.rows_exported, x.last_customer_id,
       x.last_rank, x.attempts, x.last_export_at
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
 WHERE x.tenant_id = 'sc' ORDER BY c.campaign_id, c.run_number;

-- an export's position is the scheduler's alone: the tenant's application role may reset the
-- attempts of its checkpoint, but not move it (a tenant steering where the server truncates and
-- writes a shared directory's file, or resuming a file with bytes it never wrote) nor create
-- one for a campaign run; 42501, nothing written
SET client_min_messages = warning;
CREATE ROLE regress_sched_app;
SELECT kaireon.grant_app_role('regress_sched_app');
RESET client_min_messages;
SET ROLE regress_sched_app;
SET kaireon.tenant_id = 'sc';
\set VERBOSITY sqlstate
UPDATE kaireon.export_checkpoints x SET bytes_written = 0, rows_exported = 0, status = 'running'
  FROM kaireon.campaign_runs c WHERE c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id AND c.campaign_id = 'daily';
UPDATE kaireon.export_checkpoints SET campaign_run_id = NULL WHERE tenant_id = 'sc';
INSERT INTO kaireon.export_checkpoints (tenant_id, export_type, campaign_run_id, format, target, status)
SELECT 'sc', 'mine', c.id, 'csv', 'file', 'running' FROM kaireon.campaign_runs c WHERE c.tenant_id = 'sc' LIMIT 1;
\set VERBOSITY terse
WITH u AS (UPDATE kaireon.export_checkpoints SET attempts = 0 WHERE tenant_id = 'sc' RETURNING 1) SELECT count(*) AS reset FROM u;
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS checkpoints, sum(rows_exported) AS rows_exported, count(*) FILTER (WHERE status = 'completed') AS completed
  FROM kaireon.export_checkpoints WHERE tenant_id = 'sc';
DROP OWNED BY regress_sched_app;
DROP ROLE regress_sched_app;
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_sched_app';

-- ---- exports into files of kaireon.export_directory ----
-- (the test writes into the data directory and reads the files back as superuser)
SELECT set_config('kaireon.export_directory', current_setting('data_directory'), false) IS NOT NULL AS set;
UPDATE kaireon.runs SET file_config = '{"format": "csv", "target": "file"}', next_run_at = '2030-01-07 06:00+00'
 WHERE tenant_id = 'sc' AND id = 'cron';
UPDATE kaireon.runs SET file_config = '{"format": "json", "target": "file"}', next_run_at = '2030-01-07 06:00+00'
 WHERE tenant_id = 'sc' AND id = 'daily';
UPDATE kaireon.runs SET status = 'paused' WHERE tenant_id = 'sc' AND id = 'broken';
SELECT * FROM pg_temp.tick('2030-01-07 06:00+00');
-- the file names: the tenant's slug and the campaign run's generated id only
SELECT c.campaign_id, regexp_replace(x.file_path, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>') AS file_path, x.rows_exported
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
 WHERE x.target = 'file' ORDER BY 1;
SELECT regexp_replace(pg_read_file(current_setting('data_directory') || '/' || x.file_path), '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>', 'g') AS csv
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
 WHERE x.target = 'file' AND c.campaign_id = 'cron';
-- the CSV reads back with COPY
CREATE TEMP TABLE csv_back (customer_id text, rank int, offer_id text, creative_id text, channel_id text,
                            decision_flow_id text, score float8, arbitrated_value float8, mandatory boolean,
                            recommendation_id text, interaction_id text);
DO $$
BEGIN
    EXECUTE format('COPY csv_back FROM %L WITH (FORMAT csv, HEADER true)',
                   (SELECT current_setting('data_directory') || '/' || x.file_path
                      FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
                     WHERE x.target = 'file' AND c.campaign_id = 'cron'));
END
$$;
SELECT customer_id, rank, offer_id, channel_id, score, mandatory, recommendation_id IS NOT NULL AS has_recommendation,
       interaction_id IS NOT NULL AS has_interaction
  FROM csv_back ORDER BY customer_id;
-- the JSON lines file: one object per decision
SELECT l::jsonb ->> 'customer_id' AS customer, l::jsonb ->> 'offer_id' AS offer
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id,
       regexp_split_to_table(rtrim(pg_read_file(current_setting('data_directory') || '/' || x.file_path), E'\n'), E'\n') l
 WHERE x.target = 'file' AND c.campaign_id = 'daily' ORDER BY 1;

-- ---- an export file is never written through a link planted in the directory ----
-- a symbolic link, then a hard link, named as the export file before its first batch: the
-- batch fails and the file they point at is left as it was; once removed, the export completes
UPDATE kaireon.runs SET status = 'paused' WHERE tenant_id = 'sc';
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status,
                          schedule_type, next_run_at, file_config) VALUES
    ('sc', 'link', 'Link', 'f', '["email"]', 'SELECT ''k1''', 1, 'active', 'once', '2030-01-20 00:00+00',
     '{"format": "csv", "target": "file"}');
SELECT action, run_id, status FROM kaireon.run_schedules('2030-01-20 00:00+00', max_export_batches => 0);
-- (the command's output is read, nothing is written to it: a command that exits before
-- reading a row sent to it failed the COPY now and then with "Broken pipe")
CREATE TEMP TABLE shell_output (line text);
CREATE FUNCTION pg_temp.shell(cmd text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY pg_temp.shell_output FROM PROGRAM %L', cmd);
END
$$;
CREATE FUNCTION pg_temp.link_export(at timestamptz) RETURNS TABLE (action text, status text, detail text)
LANGUAGE sql AS $$
    SELECT s.action, s.status,
           regexp_replace(regexp_replace(replace(s.detail, current_setting('data_directory'), '<dir>'),
                                         '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>'), 'has [0-9]+ bytes', 'has <n> bytes')
      FROM kaireon.run_schedules(at, 0) s
$$;
SELECT pg_temp.shell(format('cd %s && echo precious > kaireon_victim.txt && ln -s kaireon_victim.txt kaireon_sc_%s.csv',
                            current_setting('data_directory'), c.id))
  FROM kaireon.campaign_runs c WHERE c.tenant_id = 'sc' AND c.campaign_id = 'link';
SELECT * FROM pg_temp.link_export('2030-01-20 00:00+00');
SELECT pg_temp.shell(format('cd %s && rm kaireon_sc_%s.csv && ln kaireon_victim.txt kaireon_sc_%s.csv',
                            current_setting('data_directory'), c.id, c.id))
  FROM kaireon.campaign_runs c WHERE c.tenant_id = 'sc' AND c.campaign_id = 'link';
SELECT * FROM pg_temp.link_export('2030-01-20 00:01+00');
SELECT pg_read_file(current_setting('data_directory') || '/kaireon_victim.txt') AS victim;
SELECT pg_temp.shell(format('cd %s && rm kaireon_sc_%s.csv kaireon_victim.txt', current_setting('data_directory'), c.id))
  FROM kaireon.campaign_runs c WHERE c.tenant_id = 'sc' AND c.campaign_id = 'link';
SELECT * FROM pg_temp.link_export('2030-01-20 00:02+00');
SELECT x.status, x.rows_exported, x.attempts FROM kaireon.export_checkpoints x
  JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id WHERE c.campaign_id = 'link';

-- a checkpoint claiming more bytes than the file holds (the file truncated, or the row written
-- by hand) is refused rather than extending the file with a hole
UPDATE kaireon.export_checkpoints x SET status = 'running', bytes_written = 1000000000000
  FROM kaireon.campaign_runs c WHERE c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id AND c.campaign_id = 'link';
SELECT * FROM pg_temp.link_export('2030-01-20 00:03+00');
SELECT (pg_stat_file(current_setting('data_directory') || '/' || x.file_path)).size < 1000 AS not_extended
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
 WHERE c.campaign_id = 'link';
UPDATE kaireon.export_checkpoints x SET status = 'completed'
  FROM kaireon.campaign_runs c WHERE c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id AND c.campaign_id = 'link';

-- ---- an export interrupted after 3 rows resumes without duplicates ----
UPDATE kaireon.runs SET status = 'paused' WHERE tenant_id = 'sc';
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status,
                          schedule_type, next_run_at, file_config) VALUES
    ('sc', 'big', 'Big', 'f', '["email"]', 'SELECT ''k'' || i FROM generate_series(1, 5) i', 1, 'active',
     'once', '2030-02-01 00:00+00', '{"format": "csv", "target": "file"}'),
    ('sc', 'bigt', 'Big table', 'f', '["email"]', 'SELECT ''k'' || i FROM generate_series(1, 5) i', 1, 'active',
     'once', '2030-02-01 00:00+00', '{"format": "csv", "target": "table"}');
SET kaireon.export_batch_size = 2;
SET kaireon.export_fail_after = 3;
-- the first batch (2 rows) is checkpointed; the second fails after writing its first row
SELECT * FROM pg_temp.tick('2030-02-01 00:00+00');
CREATE FUNCTION pg_temp.big() RETURNS TABLE (run text, status text, rows_exported bigint, last_customer_id text, attempts int, error text)
LANGUAGE sql AS $$
    SELECT c.campaign_id, x.status, x.rows_exported, x.last_customer_id, x.attempts,
           regexp_replace(x.error, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>')
      FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
     WHERE c.campaign_id IN ('big', 'bigt') ORDER BY 1
$$;
SELECT * FROM pg_temp.big();
-- the file holds the failed batch's row beyond the checkpoint; the table only what committed
SELECT regexp_replace(pg_read_file(current_setting('data_directory') || '/' || x.file_path), '"[0-9a-f]{8}-[0-9a-f-]{27}"', '<id>', 'g') AS interrupted
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
 WHERE c.campaign_id = 'big';
SELECT count(*) AS table_lines FROM kaireon.campaign_exports e JOIN kaireon.campaign_runs c ON c.tenant_id = e.tenant_id AND c.id = e.campaign_run_id
 WHERE c.campaign_id = 'bigt';
-- retried a minute after the failure at the earliest
RESET kaireon.export_fail_after;
SELECT * FROM pg_temp.tick('2030-02-01 00:00:30+00');
SELECT * FROM pg_temp.tick('2030-02-01 00:01+00');
SELECT * FROM pg_temp.big();
-- every decision once, in order
SELECT regexp_replace(pg_read_file(current_setting('data_directory') || '/' || x.file_path), '"[0-9a-f]{8}-[0-9a-f-]{27}"', '<id>', 'g') AS resumed
  FROM kaireon.export_checkpoints x JOIN kaireon.campaign_runs c ON c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id
 WHERE c.campaign_id = 'big';
SELECT e.line_number, split_part(e.line, ',', 1) AS customer
  FROM kaireon.campaign_exports e JOIN kaireon.campaign_runs c ON c.tenant_id = e.tenant_id AND c.id = e.campaign_run_id
 WHERE c.campaign_id = 'bigt' ORDER BY e.line_number;
RESET kaireon.export_batch_size;

-- a file export while the directory is unset fails with the reason, recorded on its checkpoint
UPDATE kaireon.runs SET status = 'active', next_run_at = '2030-03-01 00:00+00' WHERE tenant_id = 'sc' AND id = 'big';
RESET kaireon.export_directory;
SELECT * FROM pg_temp.tick('2030-03-01 00:00+00');

-- recurring intervals are calendar arithmetic in UTC, whatever the session's TimeZone: a day
-- after 2030-03-09 12:00 UTC is 2030-03-10 12:00 UTC although New York moves its clocks between
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, status,
                          schedule_type, repeat_interval, next_run_at) VALUES
    ('sc', 'dst', 'DST', 'f', '["email"]', 'SELECT ''c1''', 'active', 'recurring', '1 day', '2030-03-09 12:00+00');
SET timezone = 'America/New_York';
SELECT action, run_id, status FROM kaireon.run_schedules('2030-03-09 12:00+00', max_export_batches => 0);
SET timezone = 'UTC';
SELECT next_run_at FROM kaireon.runs WHERE tenant_id = 'sc' AND id = 'dst';

-- the schedules maintenance job, committing after each run and batch (as the worker does):
-- a once run due a minute ago runs, its decisions exported into the table
UPDATE kaireon.runs SET status = 'paused' WHERE tenant_id = 'sc';
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, status,
                          schedule_type, next_run_at, file_config) VALUES
    ('sc', 'job', 'Job', 'f', '["email"]', 'SELECT ''c'' || i FROM generate_series(1, 4) i', 'active', 'once',
     now() - interval '1 minute', '{"format": "json"}');
CALL kaireon.run_maintenance_batched(ARRAY['schedules']);
SELECT status, detail FROM kaireon.maintenance_runs WHERE job = 'schedules' ORDER BY id DESC LIMIT 1;
SELECT r.status, r.next_run_at, c.status AS run_status, c.recommended, x.status AS export_status, x.rows_exported
  FROM kaireon.runs r JOIN kaireon.campaign_runs c ON c.tenant_id = r.tenant_id AND c.campaign_id = r.id
  JOIN kaireon.export_checkpoints x ON x.tenant_id = c.tenant_id AND x.campaign_run_id = c.id
 WHERE r.tenant_id = 'sc' AND r.id = 'job';

-- a scheduled run is confined to its tenant whoever runs the scheduler (here a superuser): its
-- customer query sees only its tenant's rows (sc's interactions exist, sc2 has none)
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('sc2', 'Other', 'sc2');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status)
    VALUES ('sc2', 'email', 'Email', 'email', 'explicit', 'active');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('sc2', 'f', 'f', 'F', true, '{"score": {"method": "priority_weighted"}}');
SELECT kaireon.publish_decision_flow('sc2', 'f');
INSERT INTO kaireon.runs (tenant_id, id, name, channel_ids, customer_query, status, schedule_type, next_run_at) VALUES
    ('sc2', 'peek', 'Peek', '["email"]', 'SELECT customer_id FROM kaireon.interaction_history UNION ALL SELECT ''own''',
     'active', 'once', '2030-04-01 00:00+00');
SELECT count(DISTINCT customer_id) > 1 AS others_exist FROM kaireon.interaction_history WHERE tenant_id = 'sc';
SELECT action, run_id, status FROM kaireon.run_schedules('2030-04-01 00:00+00', max_export_batches => 0);
SELECT campaign_id, status, total_customers, error FROM kaireon.campaign_runs WHERE tenant_id = 'sc2';
DELETE FROM kaireon.tenants WHERE id = 'sc2';

-- only superusers and BYPASSRLS roles run the scheduler
CREATE ROLE sched_app;
GRANT USAGE ON SCHEMA kaireon TO sched_app;
GRANT EXECUTE ON FUNCTION kaireon.run_schedules(timestamptz, integer, integer) TO sched_app;
SET ROLE sched_app;
SELECT * FROM kaireon.run_schedules('2030-03-01');
RESET ROLE;
DROP OWNED BY sched_app;
DROP ROLE sched_app;
SELECT kaireon.run_schedules('2030-01-01', -1);

DELETE FROM kaireon.maintenance_runs WHERE job = 'schedules';
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'sc';
DELETE FROM kaireon.tenants WHERE id = 'sc';
