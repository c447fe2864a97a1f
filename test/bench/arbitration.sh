#!/usr/bin/env bash
# test/bench/arbitration.sh [customers] [seconds] [repeats]: the arbitration benchmarks
# (docs/performance.md, "Arbitration").
#
# Builds and installs kaireon privately, starts a server (durable commits), loads the benchmark
# tenant of test/bench/gen_data.sql at scale S (100 offers, 20 rules, 8 contact policies) with the
# given number of customers (default 100000) and ten interactions per customer, then, in one
# invocation on that server:
#
#  1. Real time: pgbench recommend dry runs (1 client, the given seconds, default 15) with
#     real-time Lagrangian arbitration off and on (three constraints with positive prices),
#     alternating, repeats times (default 3); prints each run's TPS and p50/p99 and the ratio
#     of the median p50s (target: on adds <= 10% to p50).
#  2. Batch: kaireon.run_campaign over every customer (one channel, 2 offers per customer, 3
#     global constraints sized to bind), as a simulation (decisions written, no interactions)
#     repeats times and once recording; prints wall time, the split scoring / solve / write from
#     the run's summary, the gap and iterations; and the baselines measured in the same run: a
#     scan of the customers, and recommend dry runs through SQL for 5,000 customers (the same
#     pipeline with explanations, one call per customer).
# As root, the server and pgbench run as the OS user "postgres".
set -euo pipefail
customers=${1:-100000}
secs=${2:-15}
repeats=${3:-3}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

[ "${4:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-arb-bench test/bench/arbitration.sh "$customers" "$secs" "$repeats"

work=$5
bindir=""
finish() {
    [ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"
    if grep -q -E 'terminated by signal|PANIC' "$work/data.log" 2>/dev/null; then
        echo "---- server log (tail)"; grep -B2 -A12 -E 'terminated by signal|PANIC' "$work/data.log" | tail -40
    fi
    rm -rf "$work"
}
trap finish EXIT
kaireon_bench_server "$work" 54335 "work_mem = '64MB'" "max_wal_size = '4GB'"
kaireon_log "loading scale S with $customers customers"
"${psql[@]}" -v offers=100 -v rules=20 -v policies=8 -v customers="$customers" \
    -v interactions=$((customers * 10)) -f "$work/src/test/bench/gen_data.sql" >/dev/null
"${psql[@]}" -c 'VACUUM ANALYZE'

# bench (one pgbench run) is in test/bench/lib.sh.

# ---- 1. real time ----
"${psql[@]}" <<'SQL'
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('bench', 'rt-budget', 'daily budget', 'portfolio_budget', 'global', NULL, '{"limit": 100000, "period": "daily"}'),
    ('bench', 'rt-cat1', 'cat1 daily', 'category_cap', 'category', 'cat1', '{"limit": 5000, "period": "daily"}'),
    ('bench', 'rt-web', 'web daily', 'channel_quota', 'channel', 'web', '{"limit": 200000, "period": "daily"}');
SELECT count(*) FROM kaireon.update_dual_prices('bench');
UPDATE kaireon.dual_prices SET lambda = 0.01 WHERE tenant_id = 'bench';
INSERT INTO kaireon.tenant_settings (tenant_id, realtime_arbitration_enabled) VALUES ('bench', false);
SQL
priced=$("${psql[@]}" -At -c "UPDATE kaireon.tenant_settings SET realtime_arbitration_enabled = true WHERE tenant_id = 'bench';
    SELECT count(*) FROM kaireon.recommend('bench', 'c42', 'web', 'hero', options => '{\"dry_run\": true}') r
     WHERE (r.explanation -> 'arbitration' ->> 'price')::float8 > 0")
[ "$priced" -gt 0 ] || kaireon_die "real-time arbitration did not price the benchmark's decisions"
kaireon_log "warming up"
bench select1.sql 1 3 >/dev/null
bench recommend_dry.sql 1 3 >/dev/null
declare -a off_p50 on_p50
s1=$(bench select1.sql 1 "$secs")
for r in $(seq 1 "$repeats"); do
    for mode in off on; do
        "${psql[@]}" -c "UPDATE kaireon.tenant_settings SET realtime_arbitration_enabled = $([ $mode = on ] && echo true || echo false) WHERE tenant_id = 'bench'"
        kaireon_log "recommend dry run, arbitration $mode, run $r"
        out=$(bench recommend_dry.sql 1 "$secs")
        echo "rt $mode $r $out" >> "$work/results"
    done
done
"${psql[@]}" -c "UPDATE kaireon.tenant_settings SET realtime_arbitration_enabled = false WHERE tenant_id = 'bench'"
"${psql[@]}" -c "DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'bench'"

# ---- 2. batch ----
"${psql[@]}" -v n="$customers" <<'SQL'
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('bench', 'b-budget', 'campaign budget', 'portfolio_budget', 'global', NULL, jsonb_build_object('limit', :n * 2, 'period', 'run')),
    ('bench', 'b-cat1', 'cat1 cap', 'category_cap', 'category', 'cat1', jsonb_build_object('limit', :n / 20, 'period', 'run')),
    ('bench', 'b-web', 'web quota', 'channel_quota', 'channel', 'web', jsonb_build_object('limit', :n * 3 / 2, 'period', 'run'));
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status)
    VALUES ('bench', 'camp', 'Benchmark campaign', 'web-home', '["web"]',
            'SELECT customer_id FROM kaireon_t_bench.ds_customers', 2, 'active');
SQL
now() { date +%s.%N; }
t0=$(now); "${psql[@]}" -At -c "SELECT count(*) FROM kaireon_t_bench.ds_customers" >/dev/null; t1=$(now)
scan=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
t0=$(now)
"${psql[@]}" -At -c "SELECT count(*) FROM (SELECT customer_id FROM kaireon_t_bench.ds_customers ORDER BY customer_id LIMIT 5000) c,
    LATERAL kaireon.recommend('bench', c.customer_id, 'web', NULL, '{}', 50, 'web-home', '{\"dry_run\": true}') r" >/dev/null
t1=$(now)
rec5k=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
campaign() {
    local sim=$1 t0 t1 row
    t0=$(now)
    row=$("${psql[@]}" -At -F ' ' -c "SELECT status, total_customers, recommended, round(duality_gap::numeric, 6), iterations,
        summary -> 'timingMs' ->> 'scoring', summary -> 'timingMs' ->> 'solve', summary -> 'timingMs' ->> 'write',
        summary ->> 'candidates', summary ->> 'candidatesKept', summary ->> 'method',
        (SELECT string_agg(c ->> 'key' || '=' || round((c ->> 'used')::numeric) || '/' || round((c ->> 'limit')::numeric)
                           || '@' || round((c ->> 'lambda')::numeric, 4), ',') FROM jsonb_array_elements(summary -> 'constraints') c),
        coalesce(error, '') FROM kaireon.run_campaign('bench', 'camp', simulation => $sim)")
    t1=$(now)
    [ -n "$row" ] || kaireon_die "the campaign did not return its run"
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $row"
}
for r in $(seq 1 "$repeats"); do
    kaireon_log "campaign (simulation), run $r"
    out=$(campaign true)
    echo "sim $out" >> "$work/results"
done
kaireon_log "campaign (recording)"
out=$(campaign false)
echo "rec $out" >> "$work/results"

# ---- report ----
echo
echo "kaireon arbitration benchmark, scale S, $customers customers, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
read -r s1tps s1p50 _ <<< "$s1"
echo "SELECT 1: tps $s1tps p50 ${s1p50} ms"
echo "real time (recommend dry run, 1 client, ${secs}s per run):"
grep '^rt ' "$work/results" | awk '{ printf "  arbitration %-3s run %s: tps %8.1f  p50 %.3f ms  p99 %.3f ms\n", $2, $3, $4, $5, $6 }'
off=$(grep '^rt off' "$work/results" | awk '{ print $5 }' | median)
on=$(grep '^rt on' "$work/results" | awk '{ print $5 }' | median)
awk -v off="$off" -v on="$on" 'BEGIN { printf "  median p50: off %.3f ms, on %.3f ms: on / off = %.3f (%+.1f%%)\n", off, on, on / off, 100 * (on / off - 1) }'
echo "batch (run_campaign over $customers customers, 2 offers each, 3 global constraints):"
echo "  baseline: scan of the customers ${scan} s; recommend dry runs through SQL, 5000 customers: ${rec5k} s ($(awk -v t="$rec5k" 'BEGIN { printf "%.0f", t * 1e6 / 5000 }') us per customer)"
grep -E '^(sim|rec) ' "$work/results" | awk '{ printf "  %s: %.3f s wall, status %s, %s customers, %s decisions, gap %s, %s iterations (%s); scoring %.0f ms, solve %.0f ms, write %.0f ms; candidates %s kept %s; %s %s\n",
    $1 == "sim" ? "simulation" : "recording ", $2, $3, $4, $5, $6, $7, $13, $8, $9, $10, $11, $12, $14, $15 }'
sim=$(grep '^sim ' "$work/results" | awk '{ print $2 }' | median)
simscore=$(grep '^sim ' "$work/results" | awk '{ print $8 }' | median)
awk -v t="$sim" -v sc="$simscore" -v n="$customers" -v rec="$rec5k" 'BEGIN {
    printf "  median simulation: %.3f s (%.1f us per customer; scoring %.1f us per customer = %.2f of a recommend dry run through SQL)\n",
           t, t * 1e6 / n, sc * 1e3 / n, (sc * 1e3 / n) / (rec * 1e6 / 5000)
    printf "  linear extrapolation to 1,000,000 customers: %.0f s\n", t * 1e6 / n }'
