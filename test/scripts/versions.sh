#!/usr/bin/env bash
# test/scripts/versions.sh [SRC]: the extension's version is written in four files, which must
# agree: kaireon.control (default_version), the Makefile (EXTVERSION, the install script's name)
# META.json (PGXN: the distribution and the extension it provides) and debian/changelog (the
# newest entry's upstream version: 0.2.0-1 is the Debian package of 0.2.0). Run by test/run.sh.
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
