#!/usr/bin/env bash
# test/bench/models.sh: the scoring benchmark (docs/performance.md, "Scoring models").
#
#   bash test/bench/models.sh          build, start a private server, run test/bench/models_bench.py
#
# Environment: KAIREON_BENCH_ROWS (default 1000000), KAIREON_BENCH_REPEATS (default 5).
# Like test/run.sh it works in a scratch directory, as the OS user postgres when run as root,
# and stops its server whatever happens. Needs python3-xgboost, python3-numpy, python3-psycopg2.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"

if [ "${1:-}" != "--in-workdir" ]; then
    kaireon_ensure_deps
    tmp=${TMPDIR:-/tmp}
    [ "$(id -u)" = 0 ] && tmp=/tmp
    work=$(mktemp -d "$tmp/kaireon-bench.XXXXXX")
    chmod 755 "$work"
    rsync -a --exclude .git --exclude '*.o' --exclude '*.so' --exclude '*.bc' --exclude .kaireon "$src/" "$work/src/"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$work"
        exec runuser -u postgres -- env KAIREON_BENCH_ROWS="${KAIREON_BENCH_ROWS:-}" KAIREON_BENCH_REPEATS="${KAIREON_BENCH_REPEATS:-}" \
            bash "$work/src/test/bench/models.sh" --in-workdir "$work"
    fi
    exec bash "$work/src/test/bench/models.sh" --in-workdir "$work"
fi

work=$2
[ -n "${KAIREON_BENCH_ROWS:-}" ] || unset KAIREON_BENCH_ROWS
[ -n "${KAIREON_BENCH_REPEATS:-}" ] || unset KAIREON_BENCH_REPEATS
bindir=$(kaireon_build_install "$work/src" "$work/install")
datadir=$work/data
trap 'kaireon_stop_cluster "$bindir" "$datadir"; rm -rf "$work"' EXIT
kaireon_start_cluster "$bindir" "$datadir" "$work" 54431 "shared_buffers = '1GB'" "max_wal_size = '4GB'"
export PGHOST=$work PGPORT=54431 PGUSER=postgres PGDATABASE=bench
"$bindir/createdb" bench
"$bindir/psql" -qX -c 'CREATE EXTENSION kaireon' bench
/usr/bin/python3 -W ignore "$work/src/test/bench/models_bench.py"
