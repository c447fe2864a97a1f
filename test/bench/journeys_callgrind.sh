#!/usr/bin/env bash
# test/bench/journeys_callgrind.sh [N]: instructions per step of the journey engine
# (docs/performance.md, "Journeys").
#
# Instruction counts do not depend on the machine's load. Builds and installs kaireon
# privately, loads a small benchmark tenant (test/bench/gen_data.sql with 100 offers and 10k
# customers) and the journeys of test/bench/journeys_setup.sql (8,000 enrolments), stops the
# server, then runs `postgres --single` under `valgrind --tool=callgrind
# --toggle-collect=kaireon_advance_journeys` twice: the light enrolments made due, then
# advance_journeys over N (default 200) of them, and over 3N. Per step is the difference of
# the two totals divided by the 2N x 4 steps (each light enrolment takes 4: its wait ends, the
# split on a customer attribute, the channel action's outbox event, the next wait begins), which
# cancels the per-call costs (the first call's plan caching). Prints
# "instructions_per_step <n>" and "instructions_per_enrolment <n>". As root, runs as the OS user
# "postgres".
set -euo pipefail
n=${1:-200}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

[[ "$n" =~ ^[1-9][0-9]*$ ]] && [ $(( 3 * n )) -le 1000 ] || kaireon_die "N must be a positive integer of at most 333, not \"$n\""
command -v valgrind >/dev/null || kaireon_die "valgrind is not installed (Debian package valgrind)"

[ "${2:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-callgrind-journeys test/bench/journeys_callgrind.sh "$n"

work=$3
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54335
"${psql[@]}" -v offers=100 -v rules=20 -v policies=8 -v customers=10000 -v interactions=10000 \
    -f "$work/src/test/bench/gen_data.sql" >/dev/null
"${psql[@]}" -v enrolments=8000 -v due=1000 -v customers=10000 -f "$work/src/test/bench/journeys_setup.sql" >/dev/null
"${psql[@]}" -c 'VACUUM ANALYZE' >/dev/null
kaireon_stop_cluster "$bindir" "$work/data"

# One single-user run: the light enrolments made due, then CALLS of them advanced; prints the
# instructions callgrind counted inside kaireon_advance_journeys.
count() {
    local calls=$1 out=$work/cg.$1
    printf '%s\n' "SELECT public.jbench_reset('light');" \
        "SELECT count(*) FROM kaireon.advance_journeys('bench', now(), $calls);" \
        | valgrind --tool=callgrind --toggle-collect=kaireon_advance_journeys --callgrind-out-file="$out" \
            "$bindir/postgres" --single -D "$work/data" -c shared_preload_libraries=kaireon postgres >"$out.stdout" 2>"$out.log" \
        || { tail -n 20 "$out.log" >&2; kaireon_die "postgres --single under callgrind failed"; }
    grep -q "count = \"$(( calls * 4 ))\"" "$out.stdout" \
        || { cat "$out.stdout" >&2; kaireon_die "advance_journeys did not take $(( calls * 4 )) steps"; }
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
a=$(count "$n")
b=$(count $(( 3 * n )))
kaireon_log "totals: $a (N=$n), $b (N=$(( 3 * n )))"
echo "instructions_per_step $(( (b - a) / (2 * n * 4) ))"
echo "instructions_per_enrolment $(( (b - a) / (2 * n) ))"
