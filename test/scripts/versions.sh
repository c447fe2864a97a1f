#!/usr/bin/env bash
# test/scripts/versions.sh [SRC]: the extension's version is written in four files, which must
# agree: kaireon.control (default_version), the Makefile (EXTVERSION, the install script's name)
# META.json (PGXN: the distribution and the extension it provides) and debian/changelog (the
# newest entry's upstream version: 0.2.0-1 is the Debian package of 0.2.0). Run by test/run.sh.
# Each release of KAIREON_RELEASES (test/scripts/lib.sh) has its frozen install script and an
# upgrade script to the next release, the last one to the version under development, and
# util/version.h knows them all (docs/upgrades.md).
set -euo pipefail
src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
control=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$src/kaireon.control")
makefile=$(sed -n 's/^EXTVERSION *= *\([^ ]*\).*/\1/p' "$src/Makefile")
meta=$(sed -n 's/^    "version": "\([^"]*\)".*/\1/p' "$src/META.json")
provides=$(sed -n 's/^            "version": "\([^"]*\)".*/\1/p' "$src/META.json")
file=$(sed -n 's/^            "file": "\([^"]*\)".*/\1/p' "$src/META.json")
debian=$(sed -n '1s/^kaireon (\(.*\)-[^-]*).*/\1/p' "$src/debian/changelog")
echo "versions.sh: kaireon.control $control, Makefile $makefile, META.json $meta (provides $provides, $file), debian/changelog $debian"
[ -n "$control" ] && [ "$control" = "$makefile" ] && [ "$control" = "$meta" ] && [ "$control" = "$provides" ] &&
    [ "$file" = "sql/kaireon--$control.sql" ] && [ "$control" = "$debian" ] ||
    { echo "versions.sh: the versions disagree" >&2; exit 1; }

. "$src/test/scripts/lib.sh"
path="" prev=""
for r in $KAIREON_RELEASES "$control:"; do
    v=${r%%:*}
    [ -n "$prev" ] && { [ -f "$src/sql/kaireon--$prev--$v.sql" ] ||
        { echo "versions.sh: no upgrade script sql/kaireon--$prev--$v.sql" >&2; exit 1; }; path="$path -> $v"; }
    [ "$v" = "$control" ] || [ -f "$src/sql/kaireon--$v.sql" ] ||
        { echo "versions.sh: release $v has no frozen install script sql/kaireon--$v.sql" >&2; exit 1; }
    grep -q "\"$v\"" "$src/src/util/version.h" ||
        { echo "versions.sh: src/util/version.h (KAIREON_SQL_VERSIONS) does not know $v" >&2; exit 1; }
    [ -z "$prev" ] && path=$v
    prev=$v
done
grep -q "^#define KAIREON_VERSION \"$control\"" "$src/src/util/version.h" ||
    { echo "versions.sh: src/util/version.h's KAIREON_VERSION is not $control" >&2; exit 1; }
echo "versions.sh: upgrade path $path"
