#!/usr/bin/env bash
# test/run.sh: the whole test suite, on a fresh machine, as root or not.
#
#   bash test/run.sh            install missing packages, build with -Werror, check the layers
#                               of src/ (test/scripts/layers.sh), then run the pg_regress,
#                               isolation and TAP suites against a throwaway server, and the
#                               upgrade test (test/scripts/upgrade.sh)
#
# While working on one part, narrow the run with environment variables (CI sets none):
#   KAIREON_SUITES="regress isolation"   the suites to run (default: regress isolation tap upgrade)
#   KAIREON_REGRESS="retention dsar"     these pg_regress tests instead of the schedule
#   KAIREON_ISOLATION="caps_concurrent"  these isolation specs instead of all
#   KAIREON_TAP="test/t/030_workers.pl"  these TAP scripts instead of all
#
# Everything happens in a scratch directory (a copy of the checkout, a private install, the
# cluster); the checkout and the system's PostgreSQL directories are not written to. As root
# the build and the suites run as the OS user "postgres". The server is stopped whatever
# happens; failures print the diffs and logs. See docs/testing.md.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$src/test/scripts/lib.sh"

[ "${1:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-test test/run.sh

work=$2
cd "$work/src"
bindir=""
datadir=$work/data
status=1

finish() {
    local d
    [ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$datadir"
    # the clock runs' clusters (run_moment), should a run stop halfway
    if [ -n "$bindir" ]; then for d in "$work"/clock*/data; do kaireon_stop_cluster "$bindir" "$d"; done; fi
    if [ "$status" = 0 ]; then
        kaireon_log "all suites passed"
        rm -rf "$work"
    else
        local f
        # the server log first and the diffs last: a CI page that shows only the output's end
        # then shows what failed
        [ -s "$datadir.log" ] && { echo "---- server log (tail)"; tail -n 40 "$datadir.log"; }
        if [ -d tmp_check/log ]; then
            for f in tmp_check/log/regress_log_*; do
                [ -e "$f" ] && grep -q 'not ok' "$f" && { echo "---- $f"; tail -n 80 "$f"; }
            done
        fi
        for f in regression.diffs output_iso/regression.diffs "$work"/*.diffs; do
            [ -s "$f" ] && { echo "---- $f"; cat "$f"; }
        done
        kaireon_log "FAILED; scratch directory kept: $work"
    fi
}
trap finish EXIT

kaireon_log "building with -Werror"
bindir=$(kaireon_build_install "$work/src" "$work/install" WERROR=1)

# jansson's json_object() would bind to the postgres executable's SQL function of the same
# name (a crash); util/json.h routes every call to kj_object(). Check the built module.
if nm -D --undefined-only "$work/src/kaireon.so" | grep -w json_object >/dev/null; then
    kaireon_die "kaireon.so calls json_object(), which binds to PostgreSQL's SQL function: use kj_object()"
fi

# No call cycle between .c files, no call to a higher layer (docs/testing.md, "Layers"). The
# suites still run when it fails, so a restructuring sees both; the run fails at the end.
kaireon_log "checking layers"
failed=""
bash "$work/src/test/scripts/layers.sh" "$work/src" || failed=" layers"
# Every .c starts with postgres.h; a header declares only what its folder defines.
bash "$work/src/test/scripts/headers.sh" "$work/src" || failed="$failed headers"
bash "$work/src/test/scripts/versions.sh" "$work/src" || failed="$failed versions"

kaireon_log "starting a throwaway server (shared_preload_libraries = 'kaireon,pg_cron')"
port=54329
mkdir -p "$datadir"
rmdir "$datadir"
kaireon_start_cluster "$bindir" "$datadir" "$work" "$port" \
    "shared_preload_libraries = 'kaireon,pg_cron'" \
    "cron.database_name = 'kaireon_cron'"

export PGHOST=$work PGPORT=$port PGUSER=postgres
"$bindir/createdb" kaireon_cron
for suite in ${KAIREON_SUITES:-regress isolation tap upgrade}; do
    kaireon_log "suite: $suite"
    # ALTER EXTENSION UPDATE from every release, on servers of its own (docs/upgrades.md)
    if [ "$suite" = upgrade ]; then
        bash "$work/src/test/scripts/upgrade.sh" "$work" "$bindir" 2>&1 || failed="$failed upgrade"
        continue
    fi
    narrow=()
    [ -n "${KAIREON_REGRESS:-}" ] && narrow+=("REGRESS=$KAIREON_REGRESS")
    [ -n "${KAIREON_ISOLATION:-}" ] && narrow+=("ISOLATION=$KAIREON_ISOLATION")
    [ -n "${KAIREON_TAP:-}" ] && narrow+=("PROVE_TESTS=$KAIREON_TAP")
    make -s PG_CONFIG="$KAIREON_PG_BINDIR/pg_config" "installcheck-$suite" bindir="$bindir" \
        PROVE_FLAGS="--timer" "${narrow[@]}" 2>&1 || { failed="$failed $suite"
            # kept aside: a clock run of the same suite rewrites (or removes) them
            for f in regression.diffs output_iso/regression.diffs; do [ -s "$f" ] && cp "$f" "$work/$suite.diffs"; done; }
done
kaireon_stop_cluster "$bindir" "$datadir"

# Clock runs: the regress and isolation suites again, each against a fresh cluster whose clock
# libfaketime moves so that the suite starts a few seconds before a moment where dates are
# easy to get wrong, and crosses it. The DST moments run the server in America/Los_Angeles;
# pg_regress runs every session in PST8PDT (the same rules). The moments are fixed, and in the
# past: libfaketime hands the real time to a clock read inside a signal handler that
# interrupts a wait (poll/epoll), and PostgreSQL's timeout handler reads the clock there, so
# with the fake clock ahead of the real one statement_timeout, lock_timeout and the deadlock
# check never fire; behind it they do. docs/testing.md.
# Two moments run at once (each its own cluster, port and output directory; the suites of one
# moment one after the other), so that both cores work: each prints its log when it ends.
# KAIREON_CLOCKS=none skips them (for a quick local run; CI runs them); another value runs only
# the moments whose description contains it (KAIREON_CLOCKS="month").

# run_moment N AT TZ WHAT: the regress and isolation suites at one moment, in $work/clockN
# (cluster, logs, results); writes the suites that failed to $work/clockN/failed.
run_moment() {
    local n=$1 at=$2 tz=$3 what=$4 suite
    local dir=$work/clock$n port=$(( 54340 + $1 )) narrow
    mkdir -p "$dir"
    : >"$dir/failed"
    for suite in regress isolation; do
        [[ " ${KAIREON_SUITES:-regress isolation tap upgrade} " == *" $suite "* ]] || continue
        kaireon_log "suite: $suite at $at UTC ($what, server TimeZone $tz)"
        rm -rf "$dir/data" "$dir/data.log"
        kaireon_start_cluster_at "$at" "$bindir" "$dir/data" "$dir" "$port" \
            "shared_preload_libraries = 'kaireon,pg_cron'" \
            "cron.database_name = 'kaireon_cron'" "timezone = '$tz'" "log_timezone = 'UTC'"
        PGHOST=$dir PGPORT=$port "$bindir/createdb" kaireon_cron
        kaireon_log "server clock: $(PGHOST=$dir PGPORT=$port "$bindir/psql" -XAtc "SELECT now() AT TIME ZONE 'UTC'" postgres) UTC"
        narrow=()
        [ -n "${KAIREON_REGRESS:-}" ] && narrow+=("REGRESS=$KAIREON_REGRESS")
        [ -n "${KAIREON_ISOLATION:-}" ] && narrow+=("ISOLATION=$KAIREON_ISOLATION")
        PGHOST=$dir PGPORT=$port make -s PG_CONFIG="$KAIREON_PG_BINDIR/pg_config" "installcheck-$suite" bindir="$bindir" \
            EXTRA_REGRESS_OPTS="--outputdir=$dir/$suite --host=$dir --port=$port" "${narrow[@]}" 2>&1 ||
            { echo "$suite@$at" >>"$dir/failed"; kaireon_log "FAILED: $suite at $at ($what)"
              [ -s "$dir/$suite/regression.diffs" ] && cp "$dir/$suite/regression.diffs" "$work/$suite@${at// /T}.diffs"; }
        kaireon_stop_cluster "$bindir" "$dir/data"
    done
}

if [ "${KAIREON_CLOCKS:-all}" != none ]; then
    moments=(
        "2025-04-30 23:59:59|UTC|the last second of a month"
        "2025-06-01 00:00:00|UTC|the first second of a month"
        "2024-12-31 23:59:59|UTC|31 December 23:59:59"
        "2024-02-29 12:00:00|UTC|29 February"
        "2024-02-29 23:59:59|UTC|the end of 29 February"
        "2025-03-09 09:59:59|America/Los_Angeles|daylight saving time starts"
        "2025-11-02 08:59:59|America/Los_Angeles|daylight saving time ends"
    )
    # run at most two at once; a moment whose run stops early (a server that does not start)
    # counts as failed by its exit status
    pending=()
    finish_pending() {
        local entry k pid
        for entry in "${pending[@]}"; do
            k=${entry%%:*} pid=${entry#*:}
            wait "$pid" || echo "clock$k" >>"$work/clock$k/failed"
            cat "$work/clock$k.log"
            if [ -s "$work/clock$k/failed" ]; then failed="$failed $(tr '\n' ' ' <"$work/clock$k/failed")"; fi
        done
        pending=()
        return 0
    }
    for (( m = 0; m < ${#moments[@]}; m++ )); do
        IFS='|' read -r at tz what <<<"${moments[$m]}"
        [ "${KAIREON_CLOCKS:-all}" = all ] || [[ "$what" == *"$KAIREON_CLOCKS"* ]] || continue
        mkdir -p "$work/clock$m"
        run_moment "$m" "$at" "$tz" "$what" >"$work/clock$m.log" 2>&1 &
        pending+=("$m:$!")
        [ "${#pending[@]}" -lt 2 ] || finish_pending
    done
    finish_pending
fi
[ -z "$failed" ] || { kaireon_log "failed suites:$failed"; exit 1; }
status=0
