#!/usr/bin/env bash
# test/package.sh: the Debian package, built, installed and tested; run by CI after test/run.sh.
#
#   bash test/package.sh [--out DIR]
#
# Builds postgresql-15-kaireon from debian/ (dpkg-buildpackage -b, pg_buildext) in a scratch
# copy of the checkout, installs it into the system's PostgreSQL 15 with apt-get, checks that
# the installed files are the package's and that the documentation the error hints cite is
# installed, then runs the pg_regress and isolation suites against the installed package: a
# fresh cluster of the system's server binaries (Unix socket in the scratch directory,
# shared_preload_libraries = 'kaireon,pg_cron' as in test/run.sh), which load the extension
# from the system's directories. --out DIR keeps a copy of the built .deb files in DIR.
#
# Unlike test/run.sh, this writes to the system: it installs the build dependencies listed in
# debian/control (apt-get build-dep) and the package, as root or with sudo, and leaves the
# package installed (apt-get remove postgresql-15-kaireon removes it). The build and the
# suites run as the OS user "postgres" when root. The checkout is not written to. The scratch
# directory is removed when everything passed, kept (and named) otherwise. docs/testing.md.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$src/test/scripts/lib.sh"

out=""
case "${1:-}" in
    --out) out=$(realpath -m "${2:?--out needs a directory}") ;;
    "") ;;
    *) kaireon_die "usage: bash test/package.sh [--out DIR]" ;;
esac

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || kaireon_die "test/package.sh installs a package: run it as root or with sudo available"
    sudo="sudo"
fi

kaireon_ensure_deps
cd "$src"
if ! dpkg-checkbuilddeps debian/control 2>/dev/null; then
    kaireon_log "installing the build dependencies of debian/control"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./ >/dev/null
fi

tmp=${TMPDIR:-/tmp}
[ "$(id -u)" = 0 ] && tmp=/tmp
work=$(kaireon_scratch_copy "$tmp" kaireon-package)
bindir=$KAIREON_PG_BINDIR
pg_config=$bindir/pg_config
datadir=$work/data
package=postgresql-$KAIREON_PG_MAJOR-kaireon
status=1

finish() {
    kaireon_stop_cluster "$bindir" "$datadir"
    if [ "$status" = 0 ]; then
        kaireon_log "the package passed; $package stays installed (apt-get remove $package)"
        rm -rf "$work"
    else
        local f
        for f in "$work"/src/regression.diffs "$work"/src/output_iso/regression.diffs; do
            [ -s "$f" ] && { echo "---- $f"; cat "$f"; }
        done
        [ -s "$datadir.log" ] && { echo "---- server log (tail)"; tail -n 40 "$datadir.log"; }
        kaireon_log "FAILED; scratch directory kept: $work"
    fi
}
trap finish EXIT

kaireon_log "building the Debian package in $work (log: $work/build.log)"
(cd "$work/src" && kaireon_as_server_user dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log"; kaireon_die "dpkg-buildpackage failed"; }
version=$(sed -n '1s/^kaireon (\([^)]*\)).*/\1/p' "$work/src/debian/changelog")
deb=$work/${package}_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || kaireon_die "dpkg-buildpackage built no $deb"
if [ -n "$out" ]; then
    mkdir -p "$out"
    cp "$work"/*.deb "$out/"
    kaireon_log "copied the .deb files to $out"
fi

kaireon_log "installing $(basename "$deb")"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall --allow-downgrades --no-install-recommends "$deb" >/dev/null
# Every file the package installed is there with the package's checksum (dpkg --verify prints
# the files that differ), the module the server loads among them.
bad=$(dpkg --verify "$package") || true
[ -z "$bad" ] || kaireon_die "installed files differ from the package's: $bad"
[ "$(dpkg-query -S "$($pg_config --pkglibdir)/kaireon.so" | cut -d: -f1)" = "$package" ] \
    || kaireon_die "$($pg_config --pkglibdir)/kaireon.so is not the package's"
# The documentation pages the error hints and COMMENTs cite (docs/<page>.md) are installed.
docdir=$($pg_config --docdir)/extension/kaireon
for page in $(grep -rhoE 'docs/[a-z0-9_-]+\.md' src sql | sort -u); do
    [ -f "$docdir/$(basename "$page")" ] || kaireon_die "$page, which kaireon cites, is not installed in $docdir"
done
kaireon_log "installed files verified; docs in $docdir"

kaireon_log "starting a cluster of the system's server (shared_preload_libraries = 'kaireon,pg_cron')"
port=54339
kaireon_start_cluster "$bindir" "$datadir" "$work" "$port" \
    "shared_preload_libraries = 'kaireon,pg_cron'" \
    "cron.database_name = 'kaireon_cron'"
kaireon_as_server_user "$bindir/createdb" -h "$work" -p "$port" -U postgres kaireon_cron

# The suites' sources come from the scratch copy; the server, the module and the extension's
# SQL scripts are the system's, i.e. the package's (the build left no module in the copy).
[ ! -e "$work/src/kaireon.so" ] || kaireon_die "the build left kaireon.so in $work/src"
failed=""
for suite in regress isolation; do
    kaireon_log "suite: $suite"
    (cd "$work/src" && kaireon_as_server_user env PGHOST="$work" PGPORT="$port" PGUSER=postgres \
        make -s PG_CONFIG="$pg_config" "installcheck-$suite") 2>&1 || failed="$failed $suite"
done
[ -z "$failed" ] || { kaireon_log "failed suites:$failed"; exit 1; }
status=0
