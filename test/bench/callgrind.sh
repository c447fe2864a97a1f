#!/usr/bin/env bash
# test/bench/callgrind.sh [S|L] [N]: instructions per recommend call (docs/performance.md).
#
# Instruction counts do not depend on the machine's load, so a change can be compared with
# its base on a busy machine. Builds and installs kaireon privately, loads the benchmark tenant
# at scale S (default) or L with a normal server, stops it, then runs `postgres --single`
# under `valgrind --tool=callgrind --toggle-collect=kaireon_recommend` twice: 20 warm-up dry
# runs then N (default 100) and then 3N dry runs of `kaireon.recommend` for varying customers.
# Per call is the difference of the two totals divided by 2N, which cancels the warm-up and the
# configuration compile. Prints "dry_run_instructions_per_call <n>". As root, runs as the OS
# user "postgres". With KAIREON_CALLGRIND_KEEP=DIR the two callgrind outputs (cg.N, cg.3N) are
# copied to DIR for `callgrind_annotate --inclusive=yes` (in statement mode cg.WHAT.N, cg.WHAT.3N). KAIREON_CALLGRIND_OPTIONS replaces the
# options of the measured calls (default {"dry_run": true}; e.g. {"dry_run": true, "explain": false}).
# KAIREON_CALLGRIND_FLOW names the decision flow of the measured calls (default: the route's,
# web-home; e.g. web-model, the 100-tree model over offer features, or web-propensity, its
# baseline). KAIREON_CALLGRIND_DATA=DIR keeps the loaded cluster in DIR/data (made on the first
# run, owned by the server user) and reuses it on later runs instead of loading again: only for
# changes of C code (the reused catalog keeps the SQL it was loaded with). Each of the two
# measured runs starts from its own copy of the loaded cluster, so recording calls change
# neither the kept cluster nor the other run's starting point. The adaptive
# propensity counts are read once per run (kaireon.adaptation_refresh_ms one hour): at the
# default of a second, valgrind's slowness would have them read again every few calls.
# KAIREON_CALLGRIND_CALL=respond measures kaireon.respond instead (a click on offer o1 for the
# same customers, toggle-collect=kaireon_respond; the tenant has no journeys): it prints
# "respond_instructions_per_call <n>".
# KAIREON_CALLGRIND_CALL=statement measures whole statements as pgbench's recommend_dry.sql
# sends them, each its own transaction (parse, plan, execution start, recommend, commit;
# valgrind without toggle), and the same for the floor (test/bench/floor: an empty function of
# recommend's signature, called the same way) and for SELECT 1: it prints
# "statement_instructions_per_call <n>", "floor_instructions_per_call <n>" and
# "select1_instructions_per_call <n>".
# KAIREON_CALLGRIND_GRAPH=v2 measures the route's flow (web-home) as the version 2 graph of the
# same steps (docs/flows.md), published over it when the cluster is loaded, instead of its
# version 1 configuration.
set -euo pipefail
scale=${1:-S}
n=${2:-100}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

kaireon_bench_scale "$scale"
command -v valgrind >/dev/null || kaireon_die "valgrind is not installed (Debian package valgrind)"

[ "${3:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-callgrind test/bench/callgrind.sh "$scale" "$n"

work=$4
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
keep=${KAIREON_CALLGRIND_DATA:-}
data=$work/data
if [ -n "$keep" ] && [ -f "$keep/data/PG_VERSION" ]; then
    bindir=$(kaireon_build_install "$work/src" "$work/install")
    data=$keep/data
    kaireon_log "reusing the cluster loaded in $data"
else
    kaireon_bench_server "$work" 54332
    kaireon_log "loading scale $scale"
    "${psql[@]}" -v offers=$offers -v rules=$rules -v policies=$policies -v customers=$customers \
        -v interactions=$interactions -f "$work/src/test/bench/gen_data.sql" >/dev/null
    if [ "${KAIREON_CALLGRIND_GRAPH:-v1}" = v2 ]; then
        kaireon_log "web-home as a version 2 graph"
        "${psql[@]}" -f "$work/src/test/bench/web_home_v2.sql" >/dev/null
    fi
    "${psql[@]}" -c 'VACUUM ANALYZE' >/dev/null
    kaireon_stop_cluster "$bindir" "$work/data"
    if [ -n "$keep" ]; then
        mkdir -p "$keep" && rm -rf "$keep/data" && cp -a "$work/data" "$keep/data"
        kaireon_log "the loaded cluster kept in $keep/data"
    fi
fi

opts=${KAIREON_CALLGRIND_OPTIONS:-'{"dry_run": true}'}
case $opts in *\'*|*'$'*) kaireon_die "KAIREON_CALLGRIND_OPTIONS must hold no quote or dollar sign" ;; esac
flow=${KAIREON_CALLGRIND_FLOW:-}
case $flow in *[!A-Za-z0-9_-]*) kaireon_die "KAIREON_CALLGRIND_FLOW must be a flow key (letters, digits, - and _)" ;; esac
flow_arg=${flow:+"decision_flow => '$flow', "}
call=${KAIREON_CALLGRIND_CALL:-recommend}
case $call in
    recommend) fn=kaireon_recommend
               stmt="PERFORM * FROM kaireon.recommend('bench', 'c' || (1 + (i * 7919) % $customers), 'web', 'hero', ${flow_arg}options => '$opts')" ;;
    respond) fn=kaireon_respond
             stmt="PERFORM kaireon.respond('bench', 'c' || (1 + (i * 7919) % $customers), 'click', offer_id => 'o1')" ;;
    statement) fn="" ;;
    *) kaireon_die "KAIREON_CALLGRIND_CALL must be recommend, respond or statement" ;;
esac

# Each measured run starts from a copy of the loaded cluster: recording calls write history
# rows (a history partition that was empty is then read, caps start to bite), so a run on
# the cluster itself would measure the previous runs' decisions too, and the N run would
# leave rows the 3N run reads.
fresh_copy() {
    rm -rf "$work/run"
    cp -a "$data" "$work/run"
}

# One single-user run of WARM + COUNT statements, each its own transaction, everything counted
# (the customer id is in the text, as pgbench sends it); prints the instructions.
count_statements() {
    local calls=$1 what=$2 out=$work/cg.$2.$1 i
    fresh_copy
    {
        # the floor's function, made in the same run (its cost cancels in the difference)
        [ "$what" = floor ] && echo "CREATE SCHEMA kaireon_bench; CREATE FUNCTION kaireon_bench.recommend_floor(tenant_id text, customer_id text, channel text, placement text DEFAULT NULL, context jsonb DEFAULT '{}', max_offers integer DEFAULT NULL, decision_flow text DEFAULT NULL, options jsonb DEFAULT '{}') RETURNS SETOF kaireon.recommendation AS 'kaireon_bench_floor', 'kaireon_bench_floor' LANGUAGE C VOLATILE;"
        for (( i = 1; i <= 20 + calls; i++ )); do
            case $what in
                select1) echo 'SELECT 1;' ;;
                floor) echo "SELECT count(*) FROM kaireon_bench.recommend_floor('bench', 'c$(( 1 + (i * 7919) % customers ))', 'web', 'hero', ${flow_arg}options => '$opts');" ;;
                *) echo "SELECT count(*) FROM kaireon.recommend('bench', 'c$(( 1 + (i * 7919) % customers ))', 'web', 'hero', ${flow_arg}options => '$opts');" ;;
            esac
        done
    } | valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$bindir/postgres" --single -D "$work/run" -c shared_preload_libraries=kaireon \
            -c kaireon.adaptation_refresh_ms=3600000 postgres >/dev/null 2>"$out.log" \
        || { tail -n 20 "$out.log" >&2; kaireon_die "postgres --single under callgrind failed"; }
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
if [ "$call" = statement ]; then
    make -C "$work/src/test/bench/floor" -s PG_CONFIG="$KAIREON_PG_BINDIR/pg_config" install DESTDIR="$work/install" >/dev/null
    for what in statement floor select1; do
        a=$(count_statements "$n" $what)
        b=$(count_statements $(( 3 * n )) $what)
        [ -n "${KAIREON_CALLGRIND_KEEP:-}" ] && cp "$work/cg.$what.$n" "$work/cg.$what.$(( 3 * n ))" "$KAIREON_CALLGRIND_KEEP"/
        kaireon_log "$what totals: $a (N=$n), $b (N=$(( 3 * n )))"
        echo "${what}_instructions_per_call $(( (b - a) / (2 * n) ))"
    done
    exit 0
fi

# One single-user run of WARM + COUNT dry runs; prints the instructions callgrind counted.
count() {
    local calls=$1 out=$work/cg.$1
    fresh_copy
    printf '%s\n' "DO \$\$ BEGIN FOR i IN 1 .. $(( 20 + calls )) LOOP $stmt; END LOOP; END \$\$;" \
        | valgrind --tool=callgrind --toggle-collect=$fn --callgrind-out-file="$out" \
            "$bindir/postgres" --single -D "$work/run" -c shared_preload_libraries=kaireon \
            -c kaireon.adaptation_refresh_ms=3600000 postgres >/dev/null 2>"$out.log" \
        || { tail -n 20 "$out.log" >&2; kaireon_die "postgres --single under callgrind failed"; }
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
a=$(count "$n")
b=$(count $(( 3 * n )))
if [ -n "${KAIREON_CALLGRIND_KEEP:-}" ]; then
    cp "$work/cg.$n" "$work/cg.$(( 3 * n ))" "$KAIREON_CALLGRIND_KEEP"/
    kaireon_log "callgrind outputs in $KAIREON_CALLGRIND_KEEP"
fi
kaireon_log "totals: $a (N=$n), $b (N=$(( 3 * n )))"
if [ "$call" = respond ]; then
    echo "respond_instructions_per_call $(( (b - a) / (2 * n) ))"
else
    echo "dry_run_instructions_per_call $(( (b - a) / (2 * n) ))"
fi
