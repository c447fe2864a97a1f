#!/usr/bin/env bash
# test/bench/retention.sh [S|L] [seconds]: recommend while retention purges (docs/performance.md,
# "Retention").
#
# Builds and installs kaireon privately, starts a server (durable commits), loads the benchmark
# tenant at scale S (default) or L with test/bench/gen_data.sql, then adds expired history: as
# many rows as the scale's interactions (S 1M, L 10M), 25 to 27 months old (the default
# retention is 730 days), in three monthly partitions. The oldest month holds only the
# benchmark tenant's rows, so retention drops it in one step; the two others also hold a few
# rows of a tenant that keeps its history 10 years, so the benchmark tenant's rows there are
# deleted row by row, in batches. Then recommend (recording, 1 client, pgbench) runs without
# a break for 3 x the given seconds (default 20) before the purge, during
# CALL kaireon.run_retention_batched(), and 3 x the given seconds after it. It prints the
# decisions, TPS, p50 and p99 of each phase, the ratio of recommend's p99 during the purge to
# before it, and the purge's duration, rate and report (partitions dropped, rows removed).
# As root, the server and pgbench run as the OS user "postgres".
set -euo pipefail
scale=${1:-S}
secs=${2:-20}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

kaireon_bench_scale "$scale"

[ "${3:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-bench-retention test/bench/retention.sh "$scale" "$secs"

work=$4
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54332 "max_wal_size = '8GB'"
kaireon_log "loading scale $scale ($offers offers, $customers customers, $interactions recent interactions)"
t0=$(date +%s)
"${psql[@]}" -v offers=$offers -v rules=$rules -v policies=$policies -v customers=$customers \
    -v interactions=$interactions -f "$work/src/test/bench/gen_data.sql" >/dev/null
kaireon_log "loading $interactions expired interactions"
"${psql[@]}" -v expired=$interactions -v customers=$customers -v offers=$offers <<'SQL'
SET client_min_messages = warning;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('keeper', 'Keeper', 'keeper');
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('keeper', 'interactions', 3650);
-- months 27, 26 and 25 back, each from its 2nd day (UTC)
CREATE TEMP TABLE months AS
SELECT k, date_trunc('month', now() - make_interval(months => 27 - k), 'UTC') + interval '1 day' AS at
  FROM generate_series(0, 2) k;
SELECT count(*) FROM kaireon.create_interaction_partitions(2, (SELECT (at AT TIME ZONE 'UTC')::date FROM months WHERE k = 0));
SET session_replication_role = replica;
INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, outcome_type_key,
                                         recommendation_id, rank, offer_id, creative_id, channel_id, placement_id)
SELECT 'bench', 'x' || i, m.at + make_interval(secs => (i / 3) % (25 * 86400)),
       'c' || (1 + (i * 104729) % :customers),
       CASE i % 10 WHEN 0 THEN 'outcome' WHEN 1 THEN 'impression' ELSE 'recommendation' END,
       CASE i % 10 WHEN 0 THEN 'click' END,
       'xrec' || (i / 3), 1 + i % 3, 'o' || (1 + i % :offers), 'cw' || (1 + i % :offers), 'web', 'hero'
  FROM generate_series(0::bigint, :expired - 1) i JOIN months m ON m.k = i % 3;
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type)
SELECT 'keeper', m.at + make_interval(hours => j), 'k' || j, 'impression' FROM months m, generate_series(1, 100) j WHERE m.k > 0;
RESET session_replication_role;
ANALYZE kaireon.interaction_history;
SQL
kaireon_log "loaded in $(( $(date +%s) - t0 )) s"
"${psql[@]}" -At -c "SELECT 'expired rows per partition: ' || string_agg(c.relname || '=' || c.reltuples::bigint, ', ' ORDER BY c.relname)
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = 'kaireon.interaction_history'::regclass AND c.relname < 'interaction_history_p' || to_char(now() - interval '24 months', 'YYYY_MM')"

# recommend (recording, 1 client) runs without a break from before the purge to after it, in
# pgbench runs of 5 s whose per-transaction logs carry the end time of each transaction; each
# transaction is then counted in the phase it ended in: before, during or after the purge.
loop_bench() {
    local n=0
    while [ ! -e "$work/stop" ]; do
        n=$((n + 1))
        mkdir -p "$work/lat/$n"
        (cd "$work/lat/$n" && "$bindir/pgbench" -n -T 5 -c 1 -j 1 -l --log-prefix=lat \
            -D customers=$customers -D offers=$offers -f "$work/src/test/bench/scripts/recommend_record.sql" > out.txt 2>&1) \
            || { cat "$work/lat/$n/out.txt" >&2; return 1; }
    done
}
# Of the transactions that ended in [from, to) (epoch seconds): count, TPS, p50 and p99 (ms),
# and the median of the p99 of each 5-second slice (less sensitive to a noisy neighbour).
phase() {
    cat "$work"/lat/*/lat.* | awk -v a="$1" -v b="$2" '{ t = $5 + $6 / 1e6; if (t >= a && t < b) print int((t - a) / 5), $3 / 1000.0 }' \
        | sort -k2,2n | awk -v secs="$(awk -v a="$1" -v b="$2" 'BEGIN { print b - a }')" '
            { v[NR] = $2; n[$1]++; s[$1, n[$1]] = $2 }
            END { if (NR == 0) { print "0 0 0 0 0"; exit }
                  i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1;
                  k = 0
                  for (b in n) { j = int(n[b] * 0.99); if (j < 1) j = 1; p[++k] = s[b, j] }
                  for (x = 1; x <= k; x++) for (y = x + 1; y <= k; y++) if (p[y] < p[x]) { t = p[x]; p[x] = p[y]; p[y] = t }
                  med = (k % 2) ? p[(k + 1) / 2] : (p[k / 2] + p[k / 2 + 1]) / 2
                  printf "%d %.1f %.3f %.3f %.3f\n", NR, NR / secs, v[i50], v[i99], med }'
}
now() { date +%s.%N; }

kaireon_log "warming up"
(cd "$work" && "$bindir/pgbench" -n -T 5 -c 1 -D customers=$customers -D offers=$offers \
    -f "$work/src/test/bench/scripts/recommend_record.sql" >/dev/null 2>&1)
loop_bench & loop_pid=$!
kaireon_log "baseline before ($((3 * secs)) s)"
sleep 2; before_start=$(now); sleep $((3 * secs)); before_end=$(now)
kaireon_log "purge with recommend running"
purge_start=$(now)
"${psql[@]}" -At -c 'CALL kaireon.run_retention_batched()' > "$work/purge.out" 2>&1 \
    || { cat "$work/purge.out" >&2; kaireon_die "the purge failed"; }
purge_end=$(now)
kaireon_log "baseline after ($((3 * secs)) s)"
after_start=$(now); sleep $((3 * secs)); after_end=$(now)
touch "$work/stop"; wait "$loop_pid"

read -r n_before tps_before p50_before p99_before med_before <<< "$(phase "$before_start" "$before_end")"
read -r n_during tps_during p50_during p99_during med_during <<< "$(phase "$purge_start" "$purge_end")"
read -r n_after tps_after p50_after p99_after med_after <<< "$(phase "$after_start" "$after_end")"
report=$("${psql[@]}" -At -c "SELECT detail FROM kaireon.maintenance_runs WHERE job = 'retention' ORDER BY id DESC LIMIT 1")
deleted=$("${psql[@]}" -At -c "SELECT (detail ->> 'rowsDeleted') FROM kaireon.maintenance_runs WHERE job = 'retention' ORDER BY id DESC LIMIT 1")
left=$("${psql[@]}" -At -c "SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'bench' AND occurred_at < now() - interval '730 days'")
kept=$("${psql[@]}" -At -c "SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'keeper'")
duration=$(awk -v a="$purge_start" -v b="$purge_end" 'BEGIN { printf "%.1f", b - a }')
echo
echo "kaireon retention benchmark, scale $scale, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-14s %9s %8s %9s %9s %16s\n' phase decisions tps p50_ms p99_ms median_5s_p99_ms
printf '%-14s %9s %8s %9s %9s %16s\n' before "$n_before" "$tps_before" "$p50_before" "$p99_before" "$med_before"
printf '%-14s %9s %8s %9s %9s %16s\n' during-purge "$n_during" "$tps_during" "$p50_during" "$p99_during" "$med_during"
printf '%-14s %9s %8s %9s %9s %16s\n' after "$n_after" "$tps_after" "$p50_after" "$p99_after" "$med_after"
echo
echo "purge: $deleted rows removed in $duration s ($(awk -v n="$deleted" -v s="$duration" 'BEGIN { printf "%.0f", n / s }') rows/s); expired rows left: $left; keeper rows kept: $kept"
echo "purge report: $report"
awk -v d="$p99_during" -v b="$p99_before" -v a="$p99_after" -v md="$med_during" -v mb="$med_before" -v ma="$med_after" 'BEGIN {
    printf "recommend p99 during the purge / before it = %.3f / %.3f = %.2fx; / after it = %.2fx\n", d, b, d / b, d / a
    printf "median 5-s p99 during the purge / before it = %.3f / %.3f = %.2fx; / after it = %.2fx\n", md, mb, md / mb, md / ma }'
