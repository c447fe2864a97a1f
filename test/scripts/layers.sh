#!/usr/bin/env bash
# test/scripts/layers.sh: checks the layering of src/ on the built object files (run `make`
# first). Pure bash + awk (mawk or gawk) + nm; no compiler database, no parsing of C.
#
#   bash test/scripts/layers.sh [--data] [DIR]      DIR: the checkout (default: this script's)
#
# Reads every src/**/*.o whose .c still exists (a stale .o of a moved or deleted file is
# ignored): the functions it defines (nm type T) and the symbols it leaves undefined (U). File A
# calls file B when A has an undefined symbol that B defines; symbols no .o defines (PostgreSQL,
# libc, jansson, OpenSSL) are not edges. With --data, global variables (D, B, R: GUC variables,
# model ops tables) count as edges too. Each file gets the layer of its folder (docs/testing.md):
#
#   util 0 < security, stats 1 < config 2 < scoring, arbitration 3 < decision 4 < campaign 5
#          < maintenance 6 < kaireon.c 7
#   audit  "beside": anyone may call it; it calls only util, security and audit.
#
# Fails (exit 1) listing each offence as "caller.c -> callee.c: symbols" (paths under src/):
#   (a) a call cycle between .c files: every call between two files of one strongly connected
#       component of the call graph (size > 1), component by component;
#   (b) a call from a file to a file of a higher layer (so nobody calls maintenance except
#       kaireon.c, and audit calls nothing above security).
# Exit 0 prints one summary line. Exit 2: no object files, or a folder with no layer (add it to
# the table below and to docs/testing.md).
set -euo pipefail

data=0
[ "${1:-}" = --data ] && { data=1; shift; }
dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$dir"

objs=()
while IFS= read -r o; do
    [ -e "${o%.o}.c" ] && objs+=("$o")
done < <(find src -name '*.o' | LC_ALL=C sort)
[ "${#objs[@]}" -gt 0 ] || { echo "layers.sh: no src/**/*.o under $dir: run make first" >&2; exit 2; }

# nm -A: "src/x/y.o:0000000000000000 T name" or "src/x/y.o:                 U name".
nm -A "${objs[@]}" | LC_ALL=C awk -v data="$data" '
function layer(f,   top) {
    if (f == "kaireon.c") return 7
    top = f; sub(/\/.*/, "", top)
    if (top in L) return L[top]
    printf "layers.sh: %s: folder %s has no layer (test/scripts/layers.sh)\n", f, top > "/dev/stderr"
    bad_folder = 1
    return -1
}
BEGIN {
    L["util"] = 0; L["security"] = 1; L["stats"] = 1; L["config"] = 2; L["scoring"] = 3; L["arbitration"] = 3
    L["decision"] = 4; L["campaign"] = 5; L["maintenance"] = 6
    L["audit"] = "audit"
    defined = data ? "^[TDBR]$" : "^T$"
}
{
    file = $1; sub(/:.*/, "", file); sub(/^src\//, "", file); sub(/\.o$/, ".c", file)
    if (!(file in seen)) { seen[file] = 1; files[++n] = file }
    type = $(NF - 1); sym = $NF
    if (type ~ defined) {
        if ((sym in def) && def[sym] != file)
            printf "layers.sh: %s defined in both %s and %s\n", sym, def[sym], file > "/dev/stderr"
        def[sym] = file
    } else if (type == "U")
        und[++nu] = file SUBSEP sym
}
END {
    for (i = 1; i <= n; i++) { idx[files[i]] = i; lay[i] = layer(files[i]) }
    if (bad_folder) exit 2

    # Edges: calls[a, b] = "sym1, sym2" (in the order nm prints them: by name).
    for (k = 1; k <= nu; k++) {
        split(und[k], p, SUBSEP)
        if (!(p[2] in def) || def[p[2]] == p[1]) continue
        a = idx[p[1]]; b = idx[def[p[2]]]
        if ((a, b) in calls) calls[a, b] = calls[a, b] ", " p[2]
        else calls[a, b] = p[2]
        reach[a, b] = 1
    }

    # Transitive closure (Floyd-Warshall: n is a few dozen files).
    for (k = 1; k <= n; k++)
        for (i = 1; i <= n; i++) if ((i, k) in reach)
            for (j = 1; j <= n; j++) if ((k, j) in reach) reach[i, j] = 1

    # (a) cycles: i and j in one component when each reaches the other.
    offences = 0
    for (i = 1; i <= n; i++) {
        if (comp[i] || !((i, i) in reach)) continue
        members = ""; m = 0
        for (j = i; j <= n; j++)
            if (j == i || (((i, j) in reach) && ((j, i) in reach))) { comp[j] = i; mem[++m] = j; members = members " " files[j] }
        if (m < 2) continue
        ncycles++
        printf "CYCLE %d (%d files):%s\n", ncycles, m, members
        for (x = 1; x <= m; x++) for (y = 1; y <= m; y++)
            if ((mem[x], mem[y]) in calls) {
                printf "  %s -> %s: %s\n", files[mem[x]], files[mem[y]], calls[mem[x], mem[y]]
                offences++
            }
    }

    # (b) calls upward.
    for (i = 1; i <= n; i++) for (j = 1; j <= n; j++) {
        if (!((i, j) in calls)) continue
        a = lay[i]; b = lay[j]; up = 0
        if (b == "audit") up = 0                      # anyone may call audit
        else if (a == "audit") up = (b > 1)           # audit calls only util, security
        else up = (b > a)
        if (!up) continue
        if (!nup++) print "UPWARD CALLS (caller layer < callee layer):"
        printf "  %s -> %s: %s\n", files[i], files[j], calls[i, j]
        offences++
    }

    nedges = 0
    for (e in calls) nedges++
    if (offences) {
        printf "layers.sh: FAILED: %d offending file-to-file calls (%d cycles, %d upward) among %d files, %d calls\n", \
            offences, ncycles, nup, n, nedges
        exit 1
    }
    printf "layers.sh: %d files, %d file-to-file calls: no cycle, no upward call\n", n, nedges
}'
