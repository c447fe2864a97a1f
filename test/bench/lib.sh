# test/bench/lib.sh: what the benchmark scripts share; sourced after test/scripts/lib.sh,
# with $src the checkout.

# Set offers, rules, policies, customers and interactions for scale S or L (spec section 13).
kaireon_bench_scale() {
    case $1 in
        S) offers=100 rules=20 policies=8 customers=100000 interactions=1000000 ;;
        L) offers=1000 rules=100 policies=12 customers=1000000 interactions=10000000 ;;
        *) kaireon_die "scale must be S or L, not $1" ;;
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
