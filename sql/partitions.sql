-- interaction_history is range-partitioned by month; partitions are created ahead and rows
-- that arrived in the default partition move into a new month's partition.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('ph', 'Partitions', 'ph');
SELECT pg_get_partkeydef('kaireon.interaction_history'::regclass) AS partition_key;

-- rows for a month without a partition land in the default partition
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at) VALUES
    ('ph', 'c1', 'recommendation', '2031-03-05 10:00+00'),
    ('ph', 'c1', 'impression', '2031-03-31 23:59:59+00'),
    ('ph', 'c2', 'recommendation', '2031-04-01 00:00+00');
SELECT tableoid::regclass AS partition, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'ph' GROUP BY 1 ORDER BY 1;

-- creating March 2031 (and one month ahead) moves the March rows out of the default partition
SELECT kaireon.create_interaction_partitions(1, '2031-03-15');
SELECT tableoid::regclass AS partition, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'ph' GROUP BY 1 ORDER BY 1;
SELECT pg_get_expr(relpartbound, oid) AS bounds FROM pg_class
 WHERE relname IN ('interaction_history_p2031_03', 'interaction_history_p2031_04') ORDER BY relname;
-- existing partitions are skipped
SELECT kaireon.create_interaction_partitions(2, '2031-03-01');
-- new partitions carry row level security, the parent's indexes and the trigger checking its
-- references (docs/schema.md, "Checked references")
SELECT relname, relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_index WHERE indrelid = c.oid) AS indexes,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid AND tgname = 'Check_references') AS reference_check
  FROM pg_class c WHERE relname LIKE 'interaction_history_p2031%' AND relkind = 'r' ORDER BY relname;
-- a row that belongs to a partition's month goes there
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at)
    VALUES ('ph', 'c3', 'recommendation', '2031-05-20 12:00+00');
SELECT tableoid::regclass AS partition, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'ph' GROUP BY 1 ORDER BY 1;
-- the outcome/type rule: an outcome row needs its outcome type key, other rows must not have one
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at)
    VALUES ('ph', 'c1', 'outcome', '2031-05-21');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, occurred_at)
    VALUES ('ph', 'c1', 'outcome', 'click', '2031-05-21');
-- month boundaries are UTC whatever the session's time zone
SET timezone = 'America/New_York';
SELECT kaireon.create_interaction_partitions(0, '2031-06-10');
SET timezone = 'UTC';
SELECT pg_get_expr(relpartbound, oid) AS bounds FROM pg_class WHERE relname = 'interaction_history_p2031_06';
-- from_month defaults to today's UTC date, not the session's: in a zone whose date is not UTC's
-- date now (UTC+14 in the afternoon UTC, UTC-12 in the morning), the UTC month's partition is
-- created. (Before the fix it defaulted to current_date: on a month's last or first day the
-- session's month was created and the UTC month, where rows land, was not; the clock runs of
-- test/run.sh catch that.)
CREATE TEMP TABLE utc_month AS
SELECT format('interaction_history_p%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')) AS part;
ALTER TABLE utc_month ADD COLUMN existed boolean;
UPDATE utc_month SET existed = to_regclass('kaireon.' || part) IS NOT NULL;
SELECT set_config('TimeZone', CASE WHEN extract(hour FROM now() AT TIME ZONE 'UTC') >= 12 THEN 'Etc/GMT-14' ELSE 'Etc/GMT+12' END,
                  false) IS NOT NULL AS zone_set;
SELECT current_date <> (now() AT TIME ZONE 'UTC')::date AS local_date_is_not_utc_date;
SELECT count(*) >= 0 AS called FROM kaireon.create_interaction_partitions(0);
SELECT to_regclass('kaireon.' || part) IS NOT NULL AS utc_month_partition_exists FROM utc_month;
RESET TimeZone;
DO $$
BEGIN
    IF NOT (SELECT existed FROM utc_month) THEN
        EXECUTE format('DROP TABLE kaireon.%I', (SELECT part FROM utc_month));
    END IF;
END $$;
-- bad arguments
SELECT kaireon.create_interaction_partitions(-1);
SELECT kaireon.create_interaction_partitions(200);
SELECT kaireon.create_interaction_partitions(1, NULL);

DELETE FROM kaireon.tenants WHERE id = 'ph';
DROP TABLE kaireon.interaction_history_p2031_03, kaireon.interaction_history_p2031_04, kaireon.interaction_history_p2031_05, kaireon.interaction_history_p2031_06;
