#!/usr/bin/env bash
# test/scripts/valgrind.sh [test ...]: runs pg_regress tests (default: all of
# test/regress_schedule) against a server running under valgrind, and fails if valgrind
# reports an error in a stack that passes through kaireon's code or jansson. Errors wholly
# inside the server (WAL buffer padding written to disk, overlapping memcpy in core) are
# known false positives of an unpatched PostgreSQL build and are listed, not counted.
# Slow (minutes); not part of test/run.sh. Run as root or not, like the suite.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"
command -v valgrind >/dev/null || kaireon_die "valgrind is not installed (apt-get install valgrind)"

tmp=${TMPDIR:-/tmp}
[ "$(id -u)" = 0 ] && tmp=/tmp
work=$(mktemp -d "$tmp/kaireon-valgrind.XXXXXX")
chmod 755 "$work"
rsync -a --exclude .git --exclude '*.o' --exclude '*.so' --exclude .kaireon "$src/" "$work/src/"
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"

bindir=$(kaireon_as_server_user bash -c ". '$work/src/test/scripts/lib.sh'; kaireon_build_install '$work/src' '$work/install'")
kaireon_as_server_user "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
printf "%s\n" "port = 54339" "listen_addresses = ''" "unix_socket_directories = '$work'" \
    "shared_preload_libraries = 'kaireon'" "fsync = off" | kaireon_as_server_user tee -a "$work/data/postgresql.conf" >/dev/null

kaireon_as_server_user valgrind --quiet --trace-children=yes --num-callers=30 \
    --log-file="$work/vg.%p.log" "$bindir/postgres" -D "$work/data" >"$work/server.log" 2>&1 &
trap 'kaireon_stop_cluster "$bindir" "$work/data"' EXIT
for _ in $(seq 1 120); do
    "$bindir/pg_isready" -q -h "$work" -p 54339 && break
    sleep 1
done

tests=("$@")
[ ${#tests[@]} -gt 0 ] || mapfile -t tests < "$src/test/regress_schedule"
cd "$work/src"
regress_ok=1
kaireon_as_server_user /usr/lib/postgresql/$KAIREON_PG_MAJOR/lib/pgxs/src/test/regress/pg_regress \
    --inputdir=. --bindir="$bindir" --host="$work" --port=54339 --load-extension=kaireon "${tests[@]}" \
    || regress_ok=0
kaireon_stop_cluster "$bindir" "$work/data"
trap - EXIT

kaireon_log "valgrind reports by kind (all processes):"
grep -h '^==[0-9]*== [A-Z]' "$work"/vg.*.log | sed 's/^==[0-9]*== //; s/(0x[0-9a-f, x]*)//' | sort | uniq -c || true
# One report at a time (from its kind line to the blank line after its stack): it counts when
# a frame is in our code (our source files, built with -g, or kaireon.so) or jansson's, unless
# it is one of the server's own known false positives, which a stack through our code can
# reach too (a regular expression compiled inside a query kaireon runs, the WAL writer's
# padding).
files=$(cd "$src" && ls src/*.c src/*/*.c src/*/*/*.c | xargs -n1 basename | sed 's/\./\\./' | paste -sd'|')
ours=$(KAIREON_VG_OURS="kaireon\\.so|libjansson|\\(($files):[0-9]+\\)" awk '
    function report(b) {
        if (b == "" || b !~ ENVIRON["KAIREON_VG_OURS"]) return
        if (b ~ /Syscall param (pwrite64|write)\(buf\) points to uninitialised/ && b ~ /XLog(Flush|Write|BackgroundFlush)/) return
        if (b ~ /Source and destination overlap in memcpy/ && b ~ /by 0x[0-9A-F]+: RE_compile_and_cache/) return
        print b; print ""
    }
    /^==[0-9]+== [A-Z]/ { report(blk); blk = $0; next }
    /^==[0-9]+== *$/ { report(blk); blk = ""; next }
    blk != "" { blk = blk "\n" $0 }
    END { report(blk) }' "$work"/vg.*.log)
if [ -n "$ours" ]; then
    kaireon_log "errors through kaireon or jansson code:"
    printf '%s\n' "$ours"
    exit 1
fi
kaireon_log "no valgrind error passes through kaireon or jansson; logs in $work"
[ "$regress_ok" = 1 ] || kaireon_die "pg_regress failed under valgrind: see $work/src/regression.diffs"
