#!/usr/bin/env bash
# test/bench/adaptive.sh [seconds] [repeats]: the adaptive-model benchmark (docs/performance.md,
# "Adaptive models").
#
# Builds and installs kaireon privately, starts a server (durable commits), loads the benchmark
# tenant of test/bench/gen_data.sql at scale S (100 offers, 100,000 customers), then
# test/bench/adaptive_setup.sql: an adaptive model over the customer's four attributes, every
# offer's model trained to maturity (800 outcomes each), the flow web-adm (web-propensity with
# the adaptive model as its propensity) and 3,000 recorded decisions of each flow. Then, in
# one invocation on that server, 1 client, the given seconds per run (default 15), alternating,
# repeats times (default 3):
#   recommend dry runs of web-propensity (recommend_prop) and of web-adm (recommend_adm: every
#   candidate scored by its offer's model);
#   respond to a decision of web-propensity (respond_plain: no model learns) and of web-adm
#   (respond_adm: the offer's model learns the outcome in the same transaction);
# and prints each run and the ratios of the median p50s (targets: <= 30% added).
# As root, the server and pgbench run as the OS user "postgres".
set -euo pipefail
secs=${1:-15}
repeats=${2:-3}
customers=100000
offers=100
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

[ "${3:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-adm-bench test/bench/adaptive.sh "$secs" "$repeats"

work=$4
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54337 "max_wal_size = '4GB'"
kaireon_log "loading scale S"
"${psql[@]}" -v offers=$offers -v rules=20 -v policies=8 -v customers=$customers \
    -v interactions=1000000 -f "$work/src/test/bench/gen_data.sql" >/dev/null
kaireon_log "training the adaptive model and recording decisions"
"${psql[@]}" -v offers=$offers -v customers=$customers -v per_offer=800 -v decisions=3000 \
    -f "$work/src/test/bench/adaptive_setup.sql"
"${psql[@]}" -c 'VACUUM ANALYZE'

kaireon_log "warming up"
for w in recommend_prop recommend_adm respond_plain respond_adm; do bench "$w.sql" 1 3 >/dev/null; done
for r in $(seq 1 "$repeats"); do
    for w in recommend_prop recommend_adm respond_plain respond_adm; do
        kaireon_log "$w, run $r"
        echo "$w $r $(bench "$w.sql" 1 "$secs")" >> "$work/results"
    done
done

echo
echo "kaireon adaptive-model benchmark, scale S, ${secs}s per run, $repeats runs, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-16s %4s %10s %9s %9s\n' workload run tps p50_ms p99_ms
sort -k1,1 -k2,2n "$work/results" | while read -r w r tps p50 p99; do
    printf '%-16s %4s %10.1f %9.3f %9.3f\n' "$w" "$r" "$tps" "$p50" "$p99"
done
med() { awk -v w="$1" -v f="$2" '$1 == w { print $f }' "$work/results" | median; }
awk -v rp="$(med recommend_prop 4)" -v ra="$(med recommend_adm 4)" -v sp="$(med respond_plain 4)" -v sa="$(med respond_adm 4)" \
    -v rpt="$(med recommend_prop 3)" -v rat="$(med recommend_adm 3)" -v spt="$(med respond_plain 3)" -v sat="$(med respond_adm 3)" 'BEGIN {
    printf "median p50: recommend %.3f -> %.3f ms with the adaptive model (%+.1f%%); respond %.3f -> %.3f ms learning (%+.1f%%)\n",
           rp, ra, 100 * (ra / rp - 1), sp, sa, 100 * (sa / sp - 1)
    printf "median TPS: recommend %.1f -> %.1f (%+.1f%% time per call); respond %.1f -> %.1f (%+.1f%% time per call)\n",
           rpt, rat, 100 * (rpt / rat - 1), spt, sat, 100 * (spt / sat - 1) }'
