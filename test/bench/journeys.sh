#!/usr/bin/env bash
# test/bench/journeys.sh [enrolments] [due] [seconds] [runs]: the journey engine
# (docs/performance.md, "Journeys"; docs/journeys.md).
#
# Builds and installs kaireon privately, starts a server (durable commits), loads the
# benchmark tenant at scale S (test/bench/gen_data.sql: 100k customers), then, set-based
# (test/bench/journeys_setup.sql), 10 journeys and `enrolments` (default 1,000,000) active
# enrolments, all waiting: 8 light journeys (wait, condition_split on a customer attribute,
# channel_action as an outbox event, wait), one decision journey (wait, nba_decision recording a
# recommend, channel_action as a delivery of it, wait) and one event journey (every customer
# waits there for a "click"). `due` (default 100,000) light enrolments, and due / 10 decision
# ones, are made due at once for each engine run. It checks that the engine's statement reads
# them through the partial index journey_enrollments_due_idx (the plan is printed), then, in
# each of `runs` rounds (default 3), one after another, against this one server:
#   - engine alone: the due light enrolments made due, and the journeys job run
#     (CALL kaireon.run_maintenance_batched('{journeys}'), one transaction per batch of 100,
#     as the worker runs it) until none is due: steps per second (4 steps per enrolment);
#   - recommend alone: pgbench, a recording recommend, 1 client, `seconds` (default 20);
#   - recommend while the engine runs: the same, with the light enrolments made due again and
#     the job running alongside (it must outlast pgbench; the engine's rate then is printed too);
#   - the one-row INSERT baseline: pgbench, 1 client, `seconds`;
#   - the decision journey alone: its due enrolments, steps per second.
# and prints each round and the medians: the engine's steps per second as a ratio to the INSERT
# baseline's TPS, and recommend's p50 and p99 with and without the engine.
# Before the enrolments are loaded and after, respond (a click, which wakes the customer's
# enrolment waiting for it when there is one) runs `runs` times with pgbench: the cost of the
# wake-up in respond. As root, the server and pgbench run as the OS user "postgres".
set -euo pipefail
enrolments=${1:-1000000}
due=${2:-100000}
secs=${3:-20}
runs=${4:-3}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
. "$src/test/bench/lib.sh"

for v in "$enrolments" "$due" "$secs" "$runs"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || kaireon_die "arguments are positive integers: enrolments due seconds runs, not \"$v\""
done
[ "$due" -le $(( enrolments * 8 / 10 )) ] || kaireon_die "due ($due) must be at most 8/10 of the enrolments ($enrolments)"
kaireon_bench_scale S

[ "${5:-}" != "--in-workdir" ] && kaireon_rerun_in_scratch kaireon-bench-journeys test/bench/journeys.sh \
    "$enrolments" "$due" "$secs" "$runs"

work=$6
bindir=""
trap '[ -n "$bindir" ] && kaireon_stop_cluster "$bindir" "$work/data"; rm -rf "$work"' EXIT
kaireon_bench_server "$work" 54333 "max_wal_size = '4GB'"
kaireon_log "loading scale S ($customers customers, $interactions interactions)"
"${psql[@]}" -v offers=$offers -v rules=$rules -v policies=$policies -v customers=$customers \
    -v interactions=$interactions -f "$work/src/test/bench/gen_data.sql" >/dev/null
for _ in 1 2; do bench respond.sql 1 3 >/dev/null; done    # warm-up
declare -a resp_before resp_after
for r in $(seq "$runs"); do
    kaireon_log "respond without journeys, run $r"
    resp_before+=("$(bench respond.sql 1 "$secs")")
done

kaireon_log "loading $enrolments enrolments ($due due per light run)"
t0=$(date +%s)
"${psql[@]}" -v enrolments="$enrolments" -v due="$due" -v customers="$customers" \
    -f "$work/src/test/bench/journeys_setup.sql"
kaireon_log "loaded in $(( $(date +%s) - t0 )) s"

for r in $(seq "$runs"); do
    kaireon_log "respond with journeys (a click wakes the customer's event wait), run $r"
    resp_after+=("$(bench respond.sql 1 "$secs")")
done
woken=$("${psql[@]}" -At -c "SELECT count(*) FROM kaireon.journey_enrollments WHERE tenant_id = 'bench' AND wait_event_at IS NOT NULL")
# (woken, they are due: set back to waiting, so that the engine runs below take only their own)
"${psql[@]}" -c "UPDATE kaireon.journey_enrollments SET wait_event_at = NULL, wait_until = now() + interval '27 days'
                  WHERE tenant_id = 'bench' AND wait_event_at IS NOT NULL"

now() { date +%s.%N; }
# engine KIND: make KIND's enrolments due, run the journeys job until none is due; prints
# "seconds enrolments steps errors steps_per_second".
engine() {
    local kind=$1 marker t0 t1 left
    "${psql[@]}" -At -c "SELECT public.jbench_reset('$kind')" >/dev/null
    "${psql[@]}" -c 'VACUUM ANALYZE kaireon.journey_enrollments'
    marker=$("${psql[@]}" -At -c "SELECT coalesce(max(id), 0) FROM kaireon.maintenance_runs")
    t0=$(now)
    while :; do
        "${psql[@]}" -c "CALL kaireon.run_maintenance_batched('{journeys}')"
        left=$("${psql[@]}" -At -c "SELECT count(*) FROM kaireon.journey_enrollments WHERE status = 'active' AND wait_until <= now()")
        [ "$left" = 0 ] && break
    done
    t1=$(now)
    "${psql[@]}" -At -F ' ' -c "
        SELECT round(($t1 - $t0)::numeric, 2), sum((detail ->> 'enrollments')::bigint), sum((detail ->> 'steps')::bigint),
               sum((detail ->> 'errors')::bigint), round(sum((detail ->> 'steps')::bigint) / ($t1 - $t0)::numeric, 1)
          FROM kaireon.maintenance_runs WHERE job = 'journeys' AND id > $marker"
}

# The engine's statement reads the due enrolments through the partial index.
"${psql[@]}" -At -c "SELECT public.jbench_reset('light')" >/dev/null
"${psql[@]}" -c 'VACUUM ANALYZE kaireon.journey_enrollments'
plan=$("${psql[@]}" -At -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
    SELECT e.tenant_id, e.id, e.journey_id, e.customer_id, e.current_step_id FROM kaireon.journey_enrollments e
     WHERE e.status = 'active' AND e.wait_until <= now() AND (NULL::text IS NULL OR e.tenant_id = NULL)
     ORDER BY e.wait_until LIMIT 100")
grep -q 'Index Scan using journey_enrollments_due_idx' <<< "$plan" \
    || { echo "$plan" >&2; kaireon_die "the due enrolments are not read through journey_enrollments_due_idx"; }

kaireon_log "warming up"
bench recommend_record.sql 1 3 >/dev/null
bench insert.sql 1 3 >/dev/null

declare -a eng_alone eng_during rec_alone rec_during ins eng_dec
for r in $(seq "$runs"); do
    kaireon_log "round $r: engine alone ($due due)"
    eng_alone+=("$(engine light)")
    kaireon_log "round $r: recommend alone"
    rec_alone+=("$(bench recommend_record.sql 1 "$secs")")
    kaireon_log "round $r: recommend while the engine runs"
    engine light > "$work/during.out" & epid=$!
    sleep 2
    rec_during+=("$(bench recommend_record.sql 1 "$secs")")
    kill -0 "$epid" 2>/dev/null || kaireon_log "WARNING: the engine finished before recommend's run ended (more due enrolments needed)"
    wait "$epid"
    eng_during+=("$(cat "$work/during.out")")
    kaireon_log "round $r: INSERT baseline"
    ins+=("$(bench insert.sql 1 "$secs")")
    kaireon_log "round $r: decision journey alone ($(( due / 10 )) due)"
    eng_dec+=("$(engine decision)")
done

col() { local i=$1; shift; for x in "$@"; do echo "$x" | awk -v i="$i" '{ print $i }'; done | median; }
echo
echo "kaireon journey engine benchmark: $enrolments enrolments, $due due per light run, ${secs}s pgbench runs, $runs rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "due enrolments read by: $(grep -o 'Index Scan using [a-z_]*' <<< "$plan" | head -1)"
printf '%-6s %-34s %-34s %-26s %-26s %-12s %-34s\n' round "engine alone (s enr steps err st/s)" "engine during rec (same)" \
    "recommend alone tps p50 p99" "recommend during engine" "insert tps" "decision journey (s enr steps err st/s)"
for i in $(seq 0 $(( runs - 1 ))); do
    printf '%-6s %-34s %-34s %-26s %-26s %-12s %-34s\n' $(( i + 1 )) "${eng_alone[$i]}" "${eng_during[$i]}" \
        "${rec_alone[$i]}" "${rec_during[$i]}" "$(awk '{ print $1 }' <<< "${ins[$i]}")" "${eng_dec[$i]}"
done
m_eng=$(col 5 "${eng_alone[@]}")
m_eng_during=$(col 5 "${eng_during[@]}")
m_dec=$(col 5 "${eng_dec[@]}")
m_ins=$(col 1 "${ins[@]}")
m_rec50=$(col 2 "${rec_alone[@]}"); m_rec99=$(col 3 "${rec_alone[@]}")
m_dur50=$(col 2 "${rec_during[@]}"); m_dur99=$(col 3 "${rec_during[@]}")
m_rtps=$(col 1 "${rec_alone[@]}"); m_dtps=$(col 1 "${rec_during[@]}")
echo
echo "medians of $runs rounds (errors in the engine runs: $(printf '%s\n' "${eng_alone[@]}" "${eng_during[@]}" "${eng_dec[@]}" | awk '{ s += $4 } END { print s }')):"
awk -v e="$m_eng" -v ed="$m_eng_during" -v d="$m_dec" -v i="$m_ins" 'BEGIN {
    printf "engine, light journey: %.1f steps/s = %.2f x the one-row INSERT (%.1f TPS); %.1f enrolments/s\n", e, e / i, i, e / 4
    printf "engine, light journey, while recommend runs: %.1f steps/s\n", ed
    printf "engine, decision journey (a recording recommend per enrolment): %.1f steps/s = %.2f x INSERT; %.1f enrolments/s\n", d, d / i, d / 4 }'
awk -v a50="$m_rec50" -v a99="$m_rec99" -v d50="$m_dur50" -v d99="$m_dur99" -v at="$m_rtps" -v dt="$m_dtps" 'BEGIN {
    printf "recommend (recording, 1 client): alone %.1f TPS p50 %.3f ms p99 %.3f ms; while the engine runs %.1f TPS p50 %.3f ms p99 %.3f ms\n", at, a50, a99, dt, d50, d99
    printf "added latency of recommend while the engine runs: p50 +%.3f ms (%.2fx), p99 +%.3f ms (%.2fx)\n", d50 - a50, d50 / a50, d99 - a99, d99 / a99 }'
awk -v bt="$(col 1 "${resp_before[@]}")" -v b50="$(col 2 "${resp_before[@]}")" -v b99="$(col 3 "${resp_before[@]}")" \
    -v at="$(col 1 "${resp_after[@]}")" -v a50="$(col 2 "${resp_after[@]}")" -v a99="$(col 3 "${resp_after[@]}")" 'BEGIN {
    printf "respond (a click, 1 client): without journeys %.1f TPS p50 %.3f ms p99 %.3f ms; with %s enrolments, the click waking the customer'"'"'s event wait: %.1f TPS p50 %.3f ms p99 %.3f ms (p50 %+.3f ms)\n", bt, b50, b99, "'"$enrolments"'", at, a50, a99, a50 - b50 }'
echo "event waits woken by the responds with journeys: $woken"
