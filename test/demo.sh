#!/usr/bin/env bash
# test/demo.sh: the main job on a fresh machine, as root or not.
#
#   bash test/demo.sh          install missing packages, build, install into .kaireon/ in the
#                              checkout, start a private server there (Unix socket only), create
#                              the extension in database kaireon_demo, load the demo tenant
#                              "acme" and print its rows. The server keeps running.
#   bash test/demo.sh stop     stop that server
#
# Nothing is written outside the checkout except the Debian packages (and, when the checkout
# is not reachable by the "postgres" user that runs the server as root, a directory in /tmp).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$src/test/scripts/lib.sh"

# Where the server lives: .kaireon/ in the checkout, unless the server user cannot reach it
# or the socket path would be too long for a Unix socket.
base=$src/.kaireon
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$src" 2>/dev/null; then
    base=/tmp/kaireon-demo-$(printf '%s' "$src" | cksum | cut -d' ' -f1)
fi
[ ${#base} -le 80 ] || base=/tmp/kaireon-demo-$(printf '%s' "$src" | cksum | cut -d' ' -f1)
datadir=$base/data
port=5433
bindir_file=$base/bindir

if [ "${1:-start}" = stop ]; then
    [ -f "$bindir_file" ] || kaireon_die "no demo server set up in $base"
    kaireon_stop_cluster "$(cat "$bindir_file")" "$datadir"
    kaireon_log "demo server stopped"
    exit 0
fi
[ "${1:-start}" = start ] || kaireon_die "usage: bash test/demo.sh [start|stop]"

kaireon_ensure_deps
mkdir -p "$base"
[ "$(id -u)" = 0 ] && chmod 755 "$base"
if [ -f "$bindir_file" ]; then
    kaireon_stop_cluster "$(cat "$bindir_file")" "$datadir"
fi

kaireon_log "building in $base/build and installing into $base/install"
rsync -a --delete --exclude .git --exclude .kaireon --exclude '*.o' --exclude '*.so' "$src/" "$base/build/"
bindir=$(kaireon_build_install "$base/build" "$base/install")
echo "$bindir" > "$bindir_file"

if [ ! -d "$datadir" ]; then
    kaireon_log "creating the demo cluster in $datadir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$base"; fi
    kaireon_start_cluster "$bindir" "$datadir" "$base" "$port" \
        "shared_preload_libraries = 'kaireon'"
else
    kaireon_as_server_user "$bindir/pg_ctl" -D "$datadir" -l "$datadir.log" -w -t 60 start >/dev/null \
        || { tail -n 20 "$datadir.log" >&2; kaireon_die "the demo server did not start"; }
fi

psql_demo() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$base" -p "$port" -U postgres "$@"; }
kaireon_log "loading the demo tenant into database kaireon_demo"
psql_demo -d postgres -c 'DROP DATABASE IF EXISTS kaireon_demo' -c 'CREATE DATABASE kaireon_demo'
psql_demo -d kaireon_demo -c 'CREATE EXTENSION kaireon'
psql_demo -d kaireon_demo -f "$src/test/fixtures/demo_tenant.sql" >/dev/null

psql_demo -d kaireon_demo <<'SQL'
\echo
SELECT kaireon.version() AS kaireon_version;
\echo Offers of tenant acme (soft-deleted ones excluded):
SELECT o.id, o.name, c.name AS category, o.status, o.priority, o.weight, o.value, o.mandatory
  FROM kaireon.offers o LEFT JOIN kaireon.categories c ON c.tenant_id = o.tenant_id AND c.id = o.category_id
 WHERE o.tenant_id = 'acme' AND o.deleted_at IS NULL ORDER BY o.priority DESC;
\echo Creatives by channel and placement:
SELECT cr.offer_id, ch.name AS channel, coalesce(p.name, '(any)') AS placement, cr.name, cr.weight, cr.content
  FROM kaireon.creatives cr
  JOIN kaireon.channels ch ON ch.tenant_id = cr.tenant_id AND ch.id = cr.channel_id
  LEFT JOIN kaireon.placements p ON p.tenant_id = cr.tenant_id AND p.id = cr.placement_id
 WHERE cr.tenant_id = 'acme' ORDER BY 1, 2, 3;
\echo Qualification rules and contact policies:
SELECT 'rule' AS kind, stage AS stage_or_type, name, config FROM kaireon.qualification_rules WHERE tenant_id = 'acme'
UNION ALL
SELECT 'policy', rule_type, name, config FROM kaireon.contact_policies WHERE tenant_id = 'acme'
ORDER BY 1 DESC, 2;
\echo Customers (kaireon_t_acme.ds_customers) and the segment "affluent":
SELECT c.*, kaireon.is_segment_member('acme', 'affluent', c.customer_id) AS affluent
  FROM kaireon_t_acme.ds_customers c ORDER BY customer_id;
\echo Recommendations for cust-42 on the web hero placement (recorded):
SELECT rank, offer_id, offer_name, creative_id, round(score::numeric, 4) AS score,
       explanation -> 'factors' AS factors
  FROM kaireon.recommend('acme', 'cust-42', 'web', 'hero', context => '{"device": "mobile"}', max_offers => 3);
\echo The same for cust-7 (17, no income) with the reason each candidate was dropped (dry run, debug):
SELECT rank, offer_id, coalesce(explanation ->> 'reason', 'selected') AS outcome
  FROM kaireon.recommend('acme', 'cust-7', 'web', 'hero', options => '{"dry_run": true, "debug": true}');
\echo cust-42 clicks the first recommendation:
SELECT kaireon.respond('acme', 'cust-42', 'click', offer_id => 'gold-card') ->> 'classification' AS recorded;
\echo Interaction history by partition:
SELECT tableoid::regclass AS partition, interaction_type, outcome_type_key, offer_id, customer_id
  FROM kaireon.interaction_history WHERE tenant_id = 'acme' ORDER BY occurred_at, interaction_type;
SQL

cat <<EOF

The demo server is running (data in $datadir, Unix socket only).
Connect:   psql -h $base -p $port -U postgres kaireon_demo
Stop:      bash test/demo.sh stop
EOF
