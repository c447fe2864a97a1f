# test/bench/lib.sh: what the benchmark scripts share; sourced after test/scripts/lib.sh,
# with $src the checkout.

# Set offers, rules, policies, customers and interactions for scale S, L or XL (spec section 13;
# XL: issue 17).
kaireon_bench_scale() {
    case $1 in
        S) offers=100 rules=20 policies=8 customers=100000 interactions=1000000 ;;
        L) offers=1000 rules=100 policies=12 customers=1000000 interactions=10000000 ;;
        XL) offers=10000 rules=200 policies=16 customers=1000000 interactions=10000000 ;;
        *) kaireon_die "scale must be S, L or XL, not $1" ;;
    esac
}

# Build and install the extension in WORK, start a server there on PORT with durable commits,
# shared_buffers 1GB and the given extra settings, export PGHOST/PGPORT/PGUSER/PGDATABASE,
# set psql (an array: the command) and create the extension. Sets bindir (the caller's EXIT
# trap stops the server with it).
kaireon_bench_server() {
    local work=$1 port=$2
    shift 2
    bindir=$(kaireon_build_install "$work/src" "$work/install")
    kaireon_start_cluster "$bindir" "$work/data" "$work" "$port" \
        "shared_preload_libraries = 'kaireon'" "fsync = on" "synchronous_commit = on" \
        "shared_buffers = '1GB'" "checkpoint_timeout = '30min'" "$@"
    export PGHOST=$work PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
    "${psql[@]}" -c 'CREATE EXTENSION kaireon'
}

# bench SCRIPT CLIENTS SECONDS [PROTOCOL]: one pgbench run of test/bench/scripts/SCRIPT against
# the server of kaireon_bench_server (uses $work, $bindir, $customers and $offers, default 100),
# with pgbench's query protocol (simple by default, or prepared); prints "tps p50_ms p99_ms"
# (TPS without connection time; latencies from the per-transaction log).
bench() {
    local script=$1 clients=$2 t=$3 protocol=${4:-simple}
    local dir
    dir=$(mktemp -d "$work/run.XXXXXX")
    (cd "$dir" && "$bindir/pgbench" -n -M "$protocol" -T "$t" -c "$clients" -j "$clients" -l --log-prefix=lat \
        -D customers="$customers" -D offers="${offers:-100}" -f "$work/src/test/bench/scripts/$script" > out.txt 2>&1) \
        || { cat "$dir/out.txt" >&2; kaireon_die "pgbench failed on $script"; }
    local tps
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$dir/out.txt")
    cat "$dir"/lat.* | awk '{print $3}' | sort -n | awk -v tps="$tps" '
        { v[NR] = $1 }
        END { p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1];
              printf "%s %.3f %.3f\n", tps, p50 / 1000.0, p99 / 1000.0 }'
    rm -rf "$dir"
}

# config_memory: one line about the benchmark tenant's compiled configuration in a fresh
# backend: the first dry run's time (it compiles the configuration) and the bytes of the
# compiled configuration (kaireon.config_cache_stats) with what it holds.
config_memory() {
    "${psql[@]}" -At -F ' ' -c "SELECT set_config('bench.t0', clock_timestamp()::text, false)" \
        -c "SELECT count(*) FROM kaireon.recommend('bench', 'c1', 'web', 'hero', options => '{\"dry_run\": true}')" \
        -c "SELECT format('compiled configuration: %s bytes (%s MB) for %s offers, %s creatives, %s rules, %s policies; first dry run (compiling it) %s ms',
                          memory_bytes, round(memory_bytes / 1048576.0, 1), offers, creatives, rules, policies,
                          round(extract(epoch FROM clock_timestamp() - current_setting('bench.t0')::timestamptz) * 1000))
              FROM kaireon.config_cache_stats() WHERE tenant_id = 'bench'" | tail -n 1
}

# median: the median of the numbers on standard input, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
