#!/usr/bin/env bash
# test/bench/audit.sh: the audit benchmark (results and how to read them: docs/performance.md,
# section "Audit").
#
#   bash test/bench/audit.sh
#
# Builds the checkout into a scratch directory, starts a private server (fsync on,
# shared_buffers 1GB, Unix socket only) and measures, in one run on that server:
#   1. pgbench, 8 clients, single-row UPDATEs of offers: the unaudited baseline (an identical
#      copy of kaireon.offers without audit trigger), the audited table with every client on
#      one tenant (one chain), and with each client on its own tenant; with synchronous_commit
#      on and off; BENCH_RUNS runs of BENCH_SECONDS each, medians, and ratios to the baseline;
#      every chain is verified afterwards;
#   2. the verification of a chain of BENCH_VERIFY_ROWS audit rows (written by statements
#      updating 1000 offers each): kaireon.verify_audit_chain in one call, BENCH_RUNS times,
#      median; and in two sessions at once, each verifying half (from_id / max_rows).
# Environment: BENCH_SECONDS (default 15), BENCH_RUNS (3), BENCH_VERIFY_ROWS (1000000),
# BENCH_CLIENTS (8). The machine's other load shows in the numbers: compare ratios.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"

seconds=${BENCH_SECONDS:-15}
runs=${BENCH_RUNS:-3}
verify_rows=${BENCH_VERIFY_ROWS:-1000000}
clients=${BENCH_CLIENTS:-8}
port=55479

kaireon_ensure_deps
work=$(mktemp -d /tmp/kaireon-bench.XXXXXX)
chmod 755 "$work"
bindir=""
cleanup() {
    [ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"
    rm -rf "$work"
}
trap cleanup EXIT

kaireon_log "building into $work"
rsync -a --exclude .git --exclude .kaireon --exclude '*.o' --exclude '*.so' "$src/" "$work/src/"
bindir=$(kaireon_build_install "$work/src" "$work/install")
[ "$(id -u)" = 0 ] && chown postgres: "$work"
kaireon_start_cluster "$bindir" "$work/data" "$work" "$port" \
    "shared_preload_libraries = 'kaireon'" "fsync = on" "shared_buffers = 1GB" "max_connections = 50"

export PGHOST=$work PGPORT=$port PGUSER=postgres PGDATABASE=bench
sql() { "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
"$bindir/createdb" bench
sql -c 'CREATE EXTENSION kaireon' -f "$src/test/bench/audit_setup.sql"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { print $1 }"; }

# pgbench SCRIPT COMMIT_MODE: the tps of one run
tps() {
    PGOPTIONS="-c synchronous_commit=$2" "$bindir/pgbench" -n -c "$clients" -j 2 -T "$seconds" \
        -f "$src/test/bench/$1.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

echo "## Audited updates: pgbench, $clients clients, ${seconds} s per run, median of $runs runs"
echo
echo "| synchronous_commit | baseline (unaudited) tps | audited, one tenant tps | ratio | audited, own tenant tps | ratio |"
echo "|---|---|---|---|---|---|"
for mode in on off; do
    declare -A all=()
    for r in $(seq "$runs"); do
        for script in audit_plain audit_one_tenant audit_own_tenant; do
            t=$(tps "$script" "$mode")
            kaireon_log "synchronous_commit=$mode run $r $script: $t tps"
            all[$script]="${all[$script]:-} $t"
        done
    done
    base=$(echo ${all[audit_plain]} | tr ' ' '\n' | median)
    one=$(echo ${all[audit_one_tenant]} | tr ' ' '\n' | median)
    own=$(echo ${all[audit_own_tenant]} | tr ' ' '\n' | median)
    printf '| %s | %.0f | %.0f | %.2f | %.0f | %.2f |\n' "$mode" "$base" "$one" "$(calc "$one / $base")" \
        "$own" "$(calc "$own / $base")"
    unset all
done
echo
echo "Chains after the runs (tenant: intact, rows verified):" \
    "$(sql -c "SELECT string_agg(t.id || ': ' || v.intact || ', ' || v.verified, '; ' ORDER BY t.id)
                 FROM kaireon.tenants t, kaireon.verify_audit_chain(t.id) v WHERE t.id LIKE 'b%'")"
echo

kaireon_log "writing $verify_rows audit rows for the verification benchmark"
start=$(date +%s.%N)
sql -c "CALL bench.fill_chain('verify', $(( verify_rows / 1000 )))"
fill=$(calc "$(date +%s.%N) - $start")
rows=$(sql -c "SELECT count(*) FROM kaireon.audit_logs WHERE tenant_id = 'verify'")
sql -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" -c "SELECT pg_prewarm('kaireon.audit_logs'), pg_prewarm('kaireon.audit_logs_tenant_id_chain_seq_key')" >/dev/null

# ms of one call of verify_audit_chain
verify_ms() {
    sql -c '\timing on' -c "SELECT intact FROM kaireon.verify_audit_chain('verify')" \
        | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}
singles=""
for r in $(seq "$runs"); do
    t=$(verify_ms)
    kaireon_log "verification run $r: $t ms"
    singles="$singles $t"
done
half=$(( rows / 2 ))
split=$(sql -c "SELECT id FROM kaireon.audit_logs WHERE tenant_id = 'verify' ORDER BY id OFFSET $half LIMIT 1")
pairs=""
for r in $(seq "$runs"); do
    start=$(date +%s.%N)
    sql -c "SELECT intact FROM kaireon.verify_audit_chain('verify', NULL, $half)" > "$work/half1" &
    sql -c "SELECT intact FROM kaireon.verify_audit_chain('verify', $split)" > "$work/half2"
    wait
    t=$(calc "($(date +%s.%N) - $start) * 1000")
    [ "$(cat "$work/half1" "$work/half2")" = "$(printf 't\nt')" ] || kaireon_die "a half did not verify"
    kaireon_log "two-session verification run $r: $t ms"
    pairs="$pairs $t"
done
echo "## Verification of one chain of $rows audit rows (written in $(printf '%.0f' "$fill") s)"
echo
echo "| how | median ms | rows per second |"
echo "|---|---|---|"
m=$(echo $singles | tr ' ' '\n' | median)
printf '| one call | %.0f | %.0f |\n' "$m" "$(calc "$rows / $m * 1000")"
m=$(echo $pairs | tr ' ' '\n' | median)
printf '| two sessions, half each | %.0f | %.0f |\n' "$m" "$(calc "$rows / $m * 1000")"
echo
echo "Machine: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')"
