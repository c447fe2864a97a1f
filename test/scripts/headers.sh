#!/usr/bin/env bash
# test/scripts/headers.sh: checks the include and header rules of src/ (docs/architecture.md)
# on the built object files (run `make` first). Pure bash + awk + nm.
#
#   bash test/scripts/headers.sh [DIR]      DIR: the checkout (default: this script's)
#
# Fails (exit 1) listing each offence:
#   (a) a .c whose first #include is not "postgres.h";
#   (b) a header declaring (extern) a function or variable that a .c of another folder defines
#       (a header declares what the files of its own folder define; nm says which .o defines
#       each symbol).
set -euo pipefail
dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$dir"
bad=0

while IFS= read -r c; do
    first=$(grep -m1 '^#include' "$c" || true)
    if [ "$first" != '#include "postgres.h"' ]; then
        echo "headers.sh: $c starts with ${first:-no include}, not #include \"postgres.h\""
        bad=1
    fi
done < <(find src -name '*.c' | LC_ALL=C sort)

objs=()
while IFS= read -r o; do
    [ -e "${o%.o}.c" ] && objs+=("$o")
done < <(find src -name '*.o' | LC_ALL=C sort)
[ "${#objs[@]}" -gt 0 ] || { echo "headers.sh: no src/**/*.o under $dir: run make first" >&2; exit 2; }

# symbol -> folder of the .o defining it, then every "extern ... name(" / "name[" / "name;" of
# each header (comments stripped) whose definer lives in another folder
offences=$( { nm -A --defined-only "${objs[@]}" | awk '$(NF-1) ~ /^[TDBR]$/ { f = $1; sub(/:.*/, "", f); sub(/\/[^\/]*$/, "", f); print "D", $NF, f }'
    for h in $(find src -name '*.h' | LC_ALL=C sort); do
        sed -e 's://.*$::' "$h" | awk -v h="$h" '
            { text = text $0 "\n" }
            END {
                gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", text)
                n = split(text, lines, "\n")
                for (i = 1; i <= n; i++)
                    if (lines[i] ~ /^extern[ \t]/ && match(lines[i], /[A-Za-z_][A-Za-z_0-9]*[ \t]*(\(|\[|;)/)) {
                        name = substr(lines[i], RSTART, RLENGTH); sub(/[ \t]*[\(\[;]$/, "", name)
                        if (name == "PGDLLIMPORT") continue
                        print "H", name, h
                    }
            }'
    done; } | awk '
        $1 == "D" { def[$2] = $3; next }
        $1 == "H" { decl[++n] = $2 " " $3 }
        END {
            for (i = 1; i <= n; i++) {
                split(decl[i], p, " "); hdir = p[2]; sub(/\/[^\/]*$/, "", hdir)
                if ((p[1] in def) && def[p[1]] != hdir)
                    printf "headers.sh: %s declares %s, which %s defines\n", p[2], p[1], def[p[1]]
            }
        }')
if [ -n "$offences" ]; then
    echo "$offences"
    bad=1
fi
[ "$bad" = 0 ] || { echo "headers.sh: FAILED"; exit 1; }
echo "headers.sh: every .c starts with postgres.h; every header declares only its folder's definitions"
