#!/usr/bin/env bash
# test/bench/waits.sh [S|L|XL] [seconds]: where the time of 2 recording clients goes, by wait
# event, against the one-row INSERT (docs/performance.md, "Latest runs").
#
# Builds and installs kaireon privately, starts a server (durable commits), loads the benchmark
# tenant at the given scale (default S), then runs `pgbench -c 2` for the given seconds (default
# 20) with test/bench/scripts/recommend_record.sql and then with insert.sql; during each run a
# third session samples pg_stat_activity every 10 ms and counts the two pgbench backends'
# states: "active" (running, no wait event: the CPU), or the wait event (IO:WALSync, the commit's
# flush; LWLock:WALWrite, waiting for another backend's flush; Client:ClientRead, waiting for
# pgbench). Prints per workload its TPS and the share of each state, then the server's WAL
# records, full-page images and bytes per transaction (pg_stat_wal, reset before each run).
# Shares, not times: they move less with the machine's load than TPS do, but they are samples.
# As root, runs as the OS user "postgres".
set -euo pipefail
scale=${1:-S}
secs=${2:-20}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

kaireon_bench_scale "$scale"
case $secs in ''|*[!0-9]*|0|1|2|3|4) kaireon_die "seconds must be a number of at least 5, not $secs" ;; esac

[ "${3:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-waits test/bench/waits.sh "$scale" "$secs"

work=$4
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54334
kaireon_log "loading scale $scale"
"${psql[@]}" -v offers=$offers -v rules=$rules -v policies=$policies -v customers=$customers \
    -v interactions=$interactions -f "$work/src/test/bench/gen_data.sql" >/dev/null
"${psql[@]}" -c 'VACUUM ANALYZE' >/dev/null
# a first decision compiles the configuration outside the runs
"${psql[@]}" -c "SELECT count(*) FROM kaireon.recommend('bench', 'c1', 'web', 'hero')" >/dev/null

samples=$(( (secs - 3) * 100 ))
for w in recommend_record insert; do
    "${psql[@]}" -c CHECKPOINT -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
    (cd "$work" && "$bindir/pgbench" -n -T "$secs" -c 2 -j 2 -D customers="$customers" -D offers="$offers" \
        -f "$work/src/test/bench/scripts/$w.sql" >"$work/pgbench.$w" 2>&1) &
    pid=$!
    sleep 2
    kaireon_log "$w: sampling the 2 clients' states $samples times"
    states=$("${psql[@]}" -At -F ' ' \
        -c "CREATE TEMP TABLE sample (state text)" \
        -c "DO \$\$ BEGIN FOR i IN 1 .. $samples LOOP
                INSERT INTO sample SELECT coalesce(wait_event_type || ':' || wait_event, state)
                  FROM pg_stat_activity WHERE application_name = 'pgbench' AND backend_type = 'client backend';
                PERFORM pg_sleep(0.01);
            END LOOP; END \$\$" \
        -c "SELECT state, round(100.0 * count(*) / sum(count(*)) OVER (), 1) || '%' FROM sample GROUP BY 1 ORDER BY count(*) DESC")
    wait "$pid" || { cat "$work/pgbench.$w" >&2; kaireon_die "pgbench failed on $w"; }
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.$w")
    txs=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.$w")
    wal=$("${psql[@]}" -At -c "SELECT format('WAL per transaction: %s records, %s full-page images, %s bytes',
                                             round(wal_records::numeric / $txs, 1), round(wal_fpi::numeric / $txs, 2),
                                             round(wal_bytes / $txs)) FROM pg_stat_wal")
    echo "$w, 2 clients, ${secs}s: $tps TPS; $wal"
    echo "$states" | sed 's/^/    /'
done
