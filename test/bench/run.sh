#!/usr/bin/env bash
# test/bench/run.sh [S|L|XL] [seconds]: the recommend benchmark (spec section 13).
#
# Builds and installs kaireon privately, starts a server (durable commits: fsync and
# synchronous_commit on), loads the benchmark tenant at scale S (default) or L, then runs with
# pgbench, against that one server in one invocation, SELECT 1, a one-row INSERT, recommend
# dry-run, recommend recording and respond, each with 1 and 2 clients for the given seconds
# (default 20), the floor (an empty function of recommend's signature, test/bench/floor) with 2
# clients, SELECT 1, the dry run and the floor again with 2 clients and prepared statements, and
# prints TPS, p50 and p99 latency of each, and the ratios to the baselines. Then
# KAIREON_BENCH_ROUNDS (default 3; 0: none) alternating rounds of the 2-client ratios (SELECT 1,
# the dry run, the floor, the INSERT and recording; SELECT 1 and the dry run prepared), each
# ratio against its baseline of the same round, and their medians: single runs on a shared
# machine move by several points, the same round's baseline and the median of rounds much less.
# As root, the server and pgbench run as the OS user "postgres". See docs/performance.md.
set -euo pipefail
scale=${1:-S}
secs=${2:-20}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

kaireon_bench_scale "$scale"

[ "${3:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-bench test/bench/run.sh "$scale" "$secs"

work=$4
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54331 "max_wal_size = '4GB'"
kaireon_log "loading scale $scale ($offers offers, $rules rules, $policies policies, $customers customers, $interactions interactions)"
load_start=$(date +%s)
"${psql[@]}" -v offers=$offers -v rules=$rules -v policies=$policies -v customers=$customers \
    -v interactions=$interactions -f "$work/src/test/bench/gen_data.sql"
load_secs=$(( $(date +%s) - load_start ))
kaireon_log "loaded in $load_secs s"
memory=$(config_memory)
# the floor: a function of recommend's signature that returns no row (test/bench/floor), called
# as the dry run calls recommend; its ratio to SELECT 1 is the most any recommend could reach
make -C "$work/src/test/bench/floor" -s PG_CONFIG="$KAIREON_PG_BINDIR/pg_config" install DESTDIR="$work/install" >/dev/null
"${psql[@]}" -q -c "CREATE SCHEMA kaireon_bench" -c "CREATE FUNCTION kaireon_bench.recommend_floor(tenant_id text,
    customer_id text, channel text, placement text DEFAULT NULL, context jsonb DEFAULT '{}', max_offers integer DEFAULT NULL,
    decision_flow text DEFAULT NULL, options jsonb DEFAULT '{}') RETURNS SETOF kaireon.recommendation
    AS 'kaireon_bench_floor', 'kaireon_bench_floor' LANGUAGE C VOLATILE"

# bench (one pgbench run) is in test/bench/lib.sh.

workloads="select1 insert recommend_dry recommend_record respond"
kaireon_log "warming up"
for w in $workloads; do bench "$w.sql" 1 3 >/dev/null; done

declare -A result
for c in 1 2; do
    for w in $workloads; do
        kaireon_log "running $w with $c client(s) for $secs s"
        result[$w.$c]=$(bench "$w.sql" "$c" "$secs")
    done
done
# SELECT 1, the dry run and the floor with 2 clients and prepared statements: parse, analysis and
# planning are done once per connection, so the ratio shows what the statement around recommend costs
bench floor_dry.sql 2 3 >/dev/null
kaireon_log "running floor_dry with 2 clients for $secs s"
result[floor_dry.2]=$(bench floor_dry.sql 2 "$secs")
for w in select1 recommend_dry floor_dry; do
    bench "$w.sql" 2 3 prepared >/dev/null
    kaireon_log "running $w with 2 clients and prepared statements for $secs s"
    result[$w.2p]=$(bench "$w.sql" 2 "$secs" prepared)
done
# scoring inside recommend (dry runs, 1 client): the adaptive propensity flow, the same flow
# with a 100-tree model reading offer features (scored per candidate), and with a 100-tree
# model reading customer features only (one score per request)
model_workloads="recommend_prop recommend_model recommend_model_c"
for w in $model_workloads; do bench "$w.sql" 1 3 >/dev/null; done
for w in $model_workloads; do
    kaireon_log "running $w with 1 client for $secs s"
    result[$w.1]=$(bench "$w.sql" 1 "$secs")
done

# alternating rounds: each ratio against its baseline run just before it; tps: one run's TPS
# (bench's first field), a failed run stopping the benchmark
tps() { local out; out=$(bench "$@") || exit 1; echo "${out%% *}"; }
rounds=${KAIREON_BENCH_ROUNDS:-3}
[[ "$rounds" =~ ^[0-9]+$ ]] || kaireon_die "KAIREON_BENCH_ROUNDS must be a number of rounds (0 for none), not \"$rounds\""
round_lines=()
for r in $(seq 1 "$rounds"); do
    kaireon_log "round $r of $rounds: SELECT 1, dry run, floor, INSERT, recording; SELECT 1 and dry run prepared"
    r_s1=$(tps select1.sql 2 "$secs")
    r_dry=$(tps recommend_dry.sql 2 "$secs")
    r_fl=$(tps floor_dry.sql 2 "$secs")
    r_ins=$(tps insert.sql 2 "$secs")
    r_rec=$(tps recommend_record.sql 2 "$secs")
    r_s1p=$(tps select1.sql 2 "$secs" prepared)
    r_dryp=$(tps recommend_dry.sql 2 "$secs" prepared)
    round_lines+=("$(awk -v s1="$r_s1" -v dry="$r_dry" -v fl="$r_fl" -v ins="$r_ins" -v rec="$r_rec" \
        -v s1p="$r_s1p" -v dryp="$r_dryp" 'BEGIN { printf "%.1f %.1f %.1f %.1f %.0f", 100 * dry / s1, 100 * fl / s1,
        100 * rec / ins, 100 * dryp / s1p, s1 }')")
done

echo
echo "kaireon benchmark, scale $scale, ${secs}s per run, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "loaded in $load_secs s; $memory"
printf '%-18s %7s %10s %9s %9s\n' workload clients tps p50_ms p99_ms
for c in 1 2; do
    for w in $workloads; do
        read -r tps p50 p99 <<< "${result[$w.$c]}"
        printf '%-18s %7s %10.1f %9.3f %9.3f\n' "$w" "$c" "$tps" "$p50" "$p99"
    done
done
read -r tps p50 p99 <<< "${result[floor_dry.2]}"
printf '%-18s %7s %10.1f %9.3f %9.3f\n' floor_dry 2 "$tps" "$p50" "$p99"
for w in select1 recommend_dry floor_dry; do
    read -r tps p50 p99 <<< "${result[$w.2p]}"
    printf '%-18s %7s %10.1f %9.3f %9.3f\n' "$w (prepared)" 2 "$tps" "$p50" "$p99"
done
for w in $model_workloads; do
    read -r tps p50 p99 <<< "${result[$w.1]}"
    printf '%-18s %7s %10.1f %9.3f %9.3f\n' "$w" 1 "$tps" "$p50" "$p99"
done
echo
for c in 1 2; do
    read -r s1 _ _ <<< "${result[select1.$c]}"
    read -r ins _ _ <<< "${result[insert.$c]}"
    read -r dry _ _ <<< "${result[recommend_dry.$c]}"
    read -r rec _ _ <<< "${result[recommend_record.$c]}"
    read -r rsp _ _ <<< "${result[respond.$c]}"
    awk -v c="$c" -v s1="$s1" -v ins="$ins" -v dry="$dry" -v rec="$rec" -v rsp="$rsp" 'BEGIN {
        printf "clients=%s  recommend dry-run / SELECT 1 = %.1f%%   recommend recording / INSERT = %.1f%%   respond / INSERT = %.1f%%\n",
               c, 100 * dry / s1, 100 * rec / ins, 100 * rsp / ins }'
done
read -r s1p _ _ <<< "${result[select1.2p]}"
read -r dryp _ _ <<< "${result[recommend_dry.2p]}"
awk -v s1="$s1p" -v dry="$dryp" 'BEGIN {
    printf "clients=2  prepared statements: recommend dry-run / SELECT 1 = %.1f%%\n", 100 * dry / s1 }'
read -r s1 _ _ <<< "${result[select1.2]}"
read -r fl _ _ <<< "${result[floor_dry.2]}"
read -r flp _ _ <<< "${result[floor_dry.2p]}"
awk -v s1="$s1" -v fl="$fl" -v s1p="$s1p" -v flp="$flp" 'BEGIN {
    printf "clients=2  the floor (an empty function of recommend'"'"'s signature) / SELECT 1 = %.1f%%, prepared %.1f%%\n",
           100 * fl / s1, 100 * flp / s1p }'
read -r _ prop50 _ <<< "${result[recommend_prop.1]}"
read -r _ m50 _ <<< "${result[recommend_model.1]}"
read -r _ mc50 _ <<< "${result[recommend_model_c.1]}"
awk -v p="$prop50" -v m="$m50" -v mc="$mc50" 'BEGIN {
    printf "clients=1  p50 with a 100-tree model / without: per-candidate features %+.1f%%, customer features %+.1f%%\n",
           100 * (m / p - 1), 100 * (mc / p - 1) }'
if [ "$rounds" -gt 0 ]; then
    echo
    echo "alternating rounds, 2 clients, ${secs}s each; each ratio against its baseline of the same round"
    printf '%-8s %12s %14s %15s %22s %14s\n' round "dry/SELECT 1" "floor/SELECT 1" "record/INSERT" "dry/SELECT 1 prepared" "SELECT 1 tps"
    for r in $(seq 1 "$rounds"); do
        read -r a b c d e <<< "${round_lines[$((r - 1))]}"
        printf '%-8s %11s%% %13s%% %14s%% %21s%% %14s\n' "$r" "$a" "$b" "$c" "$d" "$e"
    done
    # the median of each column (median: test/bench/lib.sh)
    meds=()
    for i in 1 2 3 4; do
        meds+=("$(printf '%s\n' "${round_lines[@]}" | awk -v i="$i" '{ print $i }' | median)")
    done
    printf '%-8s %11.1f%% %13.1f%% %14.1f%% %21.1f%%\n' median "${meds[@]}"
fi
