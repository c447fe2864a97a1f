# test/scripts/lib.sh: shared shell functions of the test harness (test/run.sh) and the demo
# (test/demo.sh). Sourced, not run. See docs/testing.md.
#
# The extension is built and installed into a private tree (make install DESTDIR=...), next to
# private copies of the server binaries; PostgreSQL finds its share and lib directories relative
# to its own binary, so a server started from that copy loads this build without anything being
# written to the system's directories, and no root is needed once the packages are installed.
# PostgreSQL refuses to run as root: as root, the server (and the test suites, which start
# servers of their own) run as the unprivileged OS user "postgres".

# Errors inside $(...) stop the calling script too.
shopt -s inherit_errexit

KAIREON_PG_MAJOR=15
KAIREON_PG_BINDIR=/usr/lib/postgresql/$KAIREON_PG_MAJOR/bin
KAIREON_PACKAGES="make gcc pkg-config rsync postgresql-$KAIREON_PG_MAJOR postgresql-server-dev-$KAIREON_PG_MAJOR \
libjansson-dev libssl-dev postgresql-$KAIREON_PG_MAJOR-cron libipc-run-perl libfaketime \
python3-numpy python3-scipy python3-xgboost python3-sklearn python3-psycopg2 python3-jsonschema glpk-utils pgbouncer nodejs npm"
# The released versions, version:commit, oldest first: the upgrade test (test/scripts/upgrade.sh)
# builds each from the git history (docs/upgrades.md).
KAIREON_RELEASES="0.1.0:9ddb1ce"

kaireon_log() { printf '== [%s] %s\n' "$(date -u +%T)" "$*" >&2; }
kaireon_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages the project needs (apt-get update first) when any is missing:
# directly as root, with sudo otherwise; without either, says which command to run. A package
# that an installed one provides counts as installed (npm, in NodeSource's nodejs package).
kaireon_ensure_deps() {
    local missing="" p provided
    provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null \
        | awk -F'|' '$1 ~ /^ii/ { print $2 }' | tr ',' '\n' | awk '{ print $1 }')
    for p in $KAIREON_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
        grep -qxF "$p" <<<"$provided" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    kaireon_log "installing Debian packages:$missing"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || kaireon_die "missing packages:$missing; run as root: apt-get update && apt-get install -y$missing"
        sudo="sudo"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# The OS user that runs servers: the current user, or "postgres" when root.
kaireon_server_user() {
    if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

# Runs a command as the server user.
kaireon_as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# kaireon_scratch_copy TMP NAME: a new directory TMP/NAME.XXXXXX holding a copy of the
# checkout ($src) in src/, without the checkout's build and test outputs; owned by the server
# user. Prints its path.
kaireon_scratch_copy() {
    local work
    work=$(mktemp -d "$1/$2.XXXXXX")
    chmod 755 "$work"
    rsync -a --exclude .git --exclude '*.o' --exclude '*.so' --exclude .kaireon \
        --exclude results --exclude output_iso --exclude tmp_check --exclude node_modules "$src/" "$work/src/"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$work"
    echo "$work"
}

# Copy the checkout ($src) to a scratch directory and run the script again from there, as the
# OS user "postgres" when root (it must reach the directory: /tmp then, whatever TMPDIR says):
# kaireon_rerun_in_scratch NAME SCRIPT ARGS... runs SCRIPT ARGS... --in-workdir WORK, SCRIPT
# relative to the checkout. Build and test outputs of the checkout are not copied. Does not
# return.
kaireon_rerun_in_scratch() {
    local name=$1 script=$2 tmp work
    shift 2
    kaireon_ensure_deps
    tmp=${TMPDIR:-/tmp}
    [ "$(id -u)" = 0 ] && tmp=/tmp
    work=$(kaireon_scratch_copy "$tmp" "$name")
    # the released versions' sources (test/scripts/upgrade.sh), from the git history the copy
    # leaves out: work/releases/<version>; none without the history (a shallow clone). Only
    # read, so a checkout owned by another user (root's, read as postgres) is safe here.
    local r
    for r in $KAIREON_RELEASES; do
        mkdir -p "$work/releases/${r%%:*}"
        { git -c safe.directory='*' -C "$src" archive "${r#*:}" | tar -x -C "$work/releases/${r%%:*}"; } 2>/dev/null ||
            rm -rf "$work/releases/${r%%:*}"
    done
    [ "$(id -u)" = 0 ] && chown -R postgres: "$work/releases"
    if [ "$(id -u)" = 0 ]; then
        exec runuser -u postgres -- bash "$work/src/$script" "$@" --in-workdir "$work"
    fi
    exec bash "$work/src/$script" "$@" --in-workdir "$work"
}

# kaireon_build_install SRC PREFIX [make args...]: builds SRC and installs it under PREFIX
# (DESTDIR), then makes PREFIX/bin a private copy of the server binaries.
kaireon_build_install() {
    local src=$1 prefix=$2; shift 2
    local pg_config=$KAIREON_PG_BINDIR/pg_config
    make -C "$src" -s PG_CONFIG="$pg_config" "$@" >/dev/null || return 1
    make -C "$src" -s PG_CONFIG="$pg_config" install DESTDIR="$prefix" >/dev/null || return 1
    local bindir libdir sharedir
    bindir=$prefix$($pg_config --bindir)
    libdir=$prefix$($pg_config --pkglibdir)
    sharedir=$prefix$($pg_config --sharedir)
    mkdir -p "$bindir" "$libdir" "$sharedir/extension"
    # The binaries that locate share/ and lib/ from their own path are copied; the rest linked.
    local b
    for b in "$KAIREON_PG_BINDIR"/*; do
        case $(basename "$b") in
            postgres|initdb|pg_ctl|pg_upgrade) cp -f "$b" "$bindir/" ;;
            *) ln -sfn "$b" "$bindir/$(basename "$b")" ;;
        esac
    done
    local f
    for f in "$($pg_config --pkglibdir)"/*; do
        [ -e "$libdir/$(basename "$f")" ] || ln -s "$f" "$libdir/$(basename "$f")"
    done
    for f in "$($pg_config --sharedir)"/*; do
        [ "$(basename "$f")" = extension ] && continue
        [ -e "$sharedir/$(basename "$f")" ] || ln -s "$f" "$sharedir/$(basename "$f")"
    done
    for f in "$($pg_config --sharedir)"/extension/*; do
        [ -e "$sharedir/extension/$(basename "$f")" ] || ln -s "$f" "$sharedir/extension/$(basename "$f")"
    done
    echo "$bindir"
}

# kaireon_start_cluster BINDIR DATADIR SOCKDIR PORT [extra postgresql.conf lines...]:
# initdb and start a server on a Unix socket only, as the server user.
kaireon_start_cluster() {
    local bindir=$1 datadir=$2 sockdir=$3 port=$4; shift 4
    kaireon_as_server_user "$bindir/initdb" -D "$datadir" -A trust -U postgres --no-sync \
        --locale=C.UTF-8 -E UTF8 >"$datadir.initdb.log" 2>&1 \
        || { cat "$datadir.initdb.log" >&2; kaireon_die "initdb failed"; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$sockdir'"
        echo "port = $port"
        echo "fsync = off"
        echo "max_worker_processes = 16"
        local line
        for line in "$@"; do echo "$line"; done
    } | kaireon_as_server_user tee -a "$datadir/postgresql.conf" >/dev/null
    kaireon_as_server_user "$bindir/pg_ctl" -D "$datadir" -l "$datadir.log" -w -t 60 start >/dev/null \
        || { cat "$datadir.log" >&2; kaireon_die "the server did not start"; }
}

# kaireon_start_cluster_at 'YYYY-MM-DD HH:MM:SS' BINDIR DATADIR SOCKDIR PORT [conf lines...]:
# kaireon_start_cluster with the server's clock (every process of it, UTC) moved by libfaketime
# so that it reads a few seconds before the given UTC time once the server is up, then runs on
# at the normal speed. The monotonic clock is left alone. The time must be in the past (see
# the clock runs in test/run.sh: timeouts do not fire with a clock ahead of the real one).
kaireon_start_cluster_at() {
    local at=$1; shift
    local lib
    lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
    [ -n "$lib" ] || kaireon_die "libfaketime is not installed (Debian package libfaketime)"
    local offset=$(( $(date -u -d "$at UTC" +%s) - $(date -u +%s) - ${KAIREON_CLOCK_LEAD:-4} ))
    [ "$offset" -lt 0 ] || offset="+$offset"
    # libfaketime keeps a semaphore and a shared memory segment, named after the first process
    # that loads it, which removes them when it exits; every process started later finds them
    # through FAKETIME_SHARED. Left to pg_ctl, they went with pg_ctl, and a program the server
    # ran (COPY ... TO PROGRAM) failed at its start now and then ("sem_open failed and
    # recreation attempts failed", exit code 1). A shell makes them here and replaces itself
    # by exec (so nothing removes them); kaireon_stop_cluster removes them.
    local shared
    shared=$(kaireon_as_server_user env LD_PRELOAD="$lib" FAKETIME="$offset" sh -c 'echo "$FAKETIME_SHARED"; exec true')
    [[ "$shared" == /faketime_sem_*" "/faketime_shm_* ]] \
        || kaireon_die "libfaketime did not name its shared segments (FAKETIME_SHARED='$shared')"
    echo "$shared" >"$2.faketime"
    ( export LD_PRELOAD=$lib FAKETIME="$offset" FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_RESET=1 \
          FAKETIME_SHARED="$shared"
      kaireon_start_cluster "$@" )
    # still there once pg_ctl has exited, for every program the server starts
    local sem=${shared%% *} shm=${shared##* }
    [ -e "/dev/shm/sem.${sem#/}" ] && [ -e "/dev/shm/${shm#/}" ] \
        || kaireon_die "libfaketime's segments ($shared) are gone: programs the server starts would fail"
}

# kaireon_stop_cluster BINDIR DATADIR: stop the server if it runs.
kaireon_stop_cluster() {
    local bindir=$1 datadir=$2 sem shm
    [ -f "$datadir/postmaster.pid" ] &&
        { kaireon_as_server_user "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1 || true; }
    # the segments kaireon_start_cluster_at made for libfaketime
    if [ -f "$datadir.faketime" ]; then
        read -r sem shm <"$datadir.faketime"
        rm -f "/dev/shm/sem.${sem#/}" "/dev/shm/${shm#/}" "$datadir.faketime"
    fi
    return 0
}
