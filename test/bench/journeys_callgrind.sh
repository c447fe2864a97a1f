#!/usr/bin/env bash
# test/bench/journeys_callgrind.sh [N]: instructions per step of the journey engine, and what
# waking a journey costs respond (docs/performance.md, "Journeys").
#
# Instruction counts do not depend on the machine's load. Builds and installs kaireon
# privately, loads a small benchmark tenant (test/bench/gen_data.sql with 100 offers and 10k
# customers), stops the server and runs `postgres --single` under `valgrind --tool=callgrind`,
# each measurement twice (20 warm-up calls then N, and 20 then 3N: the difference of the two
# totals over 2N cancels the warm-up and the first calls' plan caching):
#   - respond (a click on an offer, each call another customer; --toggle-collect=kaireon_respond)
#     with no journey in the tenant;
#   - then, with the journeys of test/bench/journeys_setup.sql loaded (8,000 enrolments; every
#     customer waits for a click in journey jclick), the same responds, each waking its
#     customer's event wait (the UPDATE of src/decision/respond.c);
#   - the engine (--toggle-collect=kaireon_advance_journeys): the light enrolments made due,
#     then advance_journeys over N and over 3N of them (4 steps each: the wait ends, the split
#     on a customer attribute, the channel action's outbox event, the next wait begins).
# Prints respond_instructions_without_journeys, respond_instructions_waking_a_journey,
# engine_instructions_per_step and engine_instructions_per_enrolment. N defaults to 100 (at
# most 160). As root, runs as the OS user "postgres".
set -euo pipefail
n=${1:-100}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

[[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 160 ] || kaireon_die "N must be a positive integer of at most 160, not \"$n\""
command -v valgrind >/dev/null || kaireon_die "valgrind is not installed (Debian package valgrind)"

[ "${2:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-callgrind-journeys test/bench/journeys_callgrind.sh "$n"

work=$3
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54335
"${psql[@]}" -v offers=100 -v rules=20 -v policies=8 -v customers=10000 -v interactions=10000 \
    -f "$work/src/test/bench/gen_data.sql" >/dev/null
kaireon_stop_cluster "$bindir" "$work/data"

# single TOGGLE OUT: run the SQL of standard input in `postgres --single` under callgrind,
# collecting inside the function TOGGLE; prints the instructions counted (output in OUT.stdout).
single() {
    local toggle=$1 out=$2
    valgrind --tool=callgrind --toggle-collect="$toggle" --callgrind-out-file="$out" \
        "$bindir/postgres" --single -D "$work/data" -c shared_preload_libraries=kaireon postgres >"$out.stdout" 2>"$out.log" \
        || { tail -n 20 "$out.log" >&2; kaireon_die "postgres --single under callgrind failed"; }
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
# respond_run FIRST CALLS: 20 + CALLS responds (clicks) of customers cFIRST, cFIRST+1, ...
respond_run() {
    local first=$1 calls=$2
    printf '%s\n' "DO \$\$ BEGIN FOR i IN $first .. $(( first + 19 + calls )) LOOP PERFORM kaireon.respond('bench', 'c' || i, 'click', offer_id => 'o' || (1 + i % 100)); END LOOP; END \$\$;" \
        | single kaireon_respond "$work/cg.respond.$first.$calls"
}
# the N run takes customers 1 .. N + 20, the 3N run the next 3N + 20: each wakes its own
without=$(( ($(respond_run $(( n + 21 )) $(( 3 * n ))) - $(respond_run 1 "$n")) / (2 * n) ))

"$bindir/pg_ctl" -D "$work/data" -l "$work/data.log" -w -t 60 start >/dev/null
"${psql[@]}" -v enrolments=8000 -v due=1000 -v customers=10000 -f "$work/src/test/bench/journeys_setup.sql" >/dev/null
"${psql[@]}" -c 'VACUUM ANALYZE' >/dev/null
kaireon_stop_cluster "$bindir" "$work/data"
a=$(respond_run 1 "$n")
b=$(respond_run $(( n + 21 )) $(( 3 * n )))
waking=$(( (b - a) / (2 * n) ))
printf '%s\n' "SELECT count(*) FROM kaireon.journey_enrollments WHERE journey_id = 'jclick' AND wait_event_at IS NOT NULL;" \
    | "$bindir/postgres" --single -D "$work/data" -c shared_preload_libraries=kaireon postgres > "$work/woken.out" 2>&1
grep -q "count = \"$(( 4 * n + 40 ))\"" "$work/woken.out" \
    || { cat "$work/woken.out" >&2; kaireon_die "the responds did not wake $(( 4 * n + 40 )) event waits"; }

# engine_run CALLS: the light enrolments made due, then CALLS of them advanced (4 steps each).
engine_run() {
    local calls=$1 out=$work/cg.engine.$1 total
    total=$(printf '%s\n' "SELECT public.jbench_reset('light');" \
        "SELECT count(*) FROM kaireon.advance_journeys('bench', now(), $calls);" \
        | single kaireon_advance_journeys "$out")
    grep -q "count = \"$(( calls * 4 ))\"" "$out.stdout" \
        || { cat "$out.stdout" >&2; kaireon_die "advance_journeys did not take $(( calls * 4 )) steps"; }
    echo "$total"
}
a=$(engine_run "$n")
b=$(engine_run $(( 3 * n )))
echo "respond_instructions_without_journeys $without"
echo "respond_instructions_waking_a_journey $waking"
echo "engine_instructions_per_step $(( (b - a) / (2 * n * 4) ))"
echo "engine_instructions_per_enrolment $(( (b - a) / (2 * n) ))"
