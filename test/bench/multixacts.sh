#!/usr/bin/env bash
# test/bench/multixacts.sh [S|L|XL] [decisions]: MultiXacts and WAL per recording decision with
# 2 clients (docs/performance.md, "Recording: where the instructions go").
#
# Builds and installs kaireon privately, starts a server (durable commits), loads the benchmark
# tenant at the given scale (default S), then runs `pgbench -c 2` with
# test/bench/scripts/recommend_record.sql for the given number of decisions (default 1000),
# reading pg_control_checkpoint().next_multixact_id and pg_current_wal_lsn() after a CHECKPOINT
# before and after. Counts, not times: they do not depend on the machine's load. Prints
# "multixacts_per_decision <m> wal_bytes_per_decision <w>". As root, runs as the OS user
# "postgres".
set -euo pipefail
scale=${1:-S}
decisions=${2:-1000}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

kaireon_bench_scale "$scale"
case $decisions in ''|*[!0-9]*|0|1) kaireon_die "decisions must be a number of at least 2, not $decisions" ;; esac

[ "${3:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-multixacts test/bench/multixacts.sh "$scale" "$decisions"

work=$4
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54333
kaireon_log "loading scale $scale"
"${psql[@]}" -v offers=$offers -v rules=$rules -v policies=$policies -v customers=$customers \
    -v interactions=$interactions -f "$work/src/test/bench/gen_data.sql" >/dev/null
# a first decision compiles the configuration outside the count
"${psql[@]}" -c "SELECT count(*) FROM kaireon.recommend('bench', 'c1', 'web', 'hero')" >/dev/null

# next_multixact_id (as bigint: the counter has not wrapped on a fresh cluster) and the WAL position
reading() {
    "${psql[@]}" -At -c CHECKPOINT \
        -c "SELECT (SELECT next_multixact_id::text::bigint FROM pg_control_checkpoint()) || ' ' || pg_current_wal_lsn()"
}
read -r m0 w0 <<<"$(reading)"
(cd "$work" && "$bindir/pgbench" -n -c 2 -j 2 -t $(( decisions / 2 )) -D customers="$customers" \
    -f "$work/src/test/bench/scripts/recommend_record.sql" >"$work/pgbench.out" 2>&1) \
    || { cat "$work/pgbench.out" >&2; kaireon_die "pgbench failed"; }
read -r m1 w1 <<<"$(reading)"
n=$(( decisions / 2 * 2 ))
"${psql[@]}" -At -c "SELECT format('multixacts_per_decision %s wal_bytes_per_decision %s',
                                   round(($m1 - $m0)::numeric / $n, 3),
                                   round(pg_wal_lsn_diff('$w1', '$w0') / $n))"
