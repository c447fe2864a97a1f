#!/usr/bin/env bash
# test/scripts/upgrade.sh WORK BINDIR: the upgrade test (docs/upgrades.md), run by test/run.sh.
# BINDIR is the private install of the current build; WORK/releases/0.1.0 the source of release
# 0.1.0 (main at 9ddb1ce), which kaireon_rerun_in_scratch takes from the git history
# (KAIREON_RELEASES in test/scripts/lib.sh).
#
#  1. Builds the 0.1.0 library into a second private install and
#     starts a server of it; creates the demo tenant of 0.1.0 (its test/fixtures/demo_tenant.sql:
#     a published data schema and segment, audit chains), monthly partitions, decisions
#     (recommend) and outcomes (respond); records the decisions and the audit chains.
#  2. Replaces the library: the same data directory under a server of the current install (as a
#     package upgrade does). The decision path, audited writes and the maintenance jobs refuse
#     the old SQL (55000); 0.1.0's verify_audit_chain works (its own C symbol); then ALTER
#     EXTENSION kaireon UPDATE.
#  3. Checks (a) that the catalog equals a fresh install's (pg_dump --schema-only
#     --binary-upgrade of both, test/scripts/normalise_dump.py; the diff is printed), also for
#     CREATE EXTENSION kaireon VERSION '0.1.0' under the current library and an update;
#     (b) that the decisions and the audit chains are unchanged and verify; (c) that the run-time
#     objects work: recommend and respond, the segment view, a new partition, a new version of
#     the data schema; (d) that SQL of a version the library does not know is refused (0A000).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/test/scripts/lib.sh"

work=$1 newbin=$2
release=$work/releases/0.1.0
up=$work/upgrade
port=54331
[ -f "$release/kaireon.control" ] ||
    kaireon_die "upgrade: no source of release 0.1.0 in $release: the checkout lacks its git history (a shallow clone? git fetch --unshallow)"
rm -rf "$up"
mkdir -p "$up"
kaireon_log "upgrade: building 0.1.0"
oldbin=$(kaireon_build_install "$release" "$up/install-0.1.0")

export PGHOST=$up PGPORT=$port PGUSER=postgres
psql=("$newbin/psql" -X -q -v ON_ERROR_STOP=1)
q() { "${psql[@]}" -At -c "$1" "${2:-up}"; }
fail() { echo "upgrade: FAILED: $*" >&2; exit 1; }
stop() { kaireon_stop_cluster "$1" "$up/data"; }
trap 'kaireon_stop_cluster "$newbin" "$up/data" 2>/dev/null; kaireon_stop_cluster "$oldbin" "$up/data" 2>/dev/null || true' EXIT

# ---- 1. 0.1.0 with data ----
kaireon_start_cluster "$oldbin" "$up/data" "$up" "$port" "shared_preload_libraries = 'kaireon'"
q "CREATE DATABASE up" postgres
q "CREATE EXTENSION kaireon" >/dev/null
[ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'kaireon'")" = 0.1.0 ] || fail "the 0.1.0 install is not 0.1.0"
"${psql[@]}" -f "$release/test/fixtures/demo_tenant.sql" up >/dev/null
"${psql[@]}" up >/dev/null <<'SQL'
SELECT kaireon.create_interaction_partitions(2, date '2026-01-01');
SELECT count(*) FROM unnest(ARRAY['cust-42', 'cust-99', 'cust-7']) c, LATERAL kaireon.recommend('acme', c, 'web', 'hero') r;
SELECT kaireon.respond('acme', 'cust-42', 'click', recommendation_id => r.recommendation_id, rank => r.rank)
  FROM kaireon.recommend('acme', 'cust-42', 'web', 'hero') r WHERE r.rank = 1;
UPDATE kaireon.offers SET priority = priority - 1 WHERE tenant_id = 'acme';
-- an application role (its grants are compared with those of a role granted under 0.2.0)
DO $$BEGIN IF to_regrole('kaireon_upgrade_app') IS NULL THEN CREATE ROLE kaireon_upgrade_app NOLOGIN; END IF; END$$;
SELECT kaireon.grant_app_role('kaireon_upgrade_app');
-- a platform administrator (0.1.0: a user without a tenant, audited in the chain without one)
INSERT INTO kaireon.users (id, email, role) VALUES ('admin-1', 'root@example.com', 'admin');
INSERT INTO kaireon.users (tenant_id, id, email, role) VALUES ('acme', 'u-1', 'ops@acme.example', 'editor');
-- a site's own approval action whose function lives in schema kaireon with a leading
-- underscore: the upgrade moves only kaireon's built-in functions to kaireon_internal
CREATE FUNCTION kaireon._site_apply(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE sql AS 'SELECT NULL';
INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, description)
VALUES ('site.custom', 'offers', 'kaireon._site_apply(text,text,jsonb)', 'a site''s own action');
-- the administrator's session: 0.2.0 platform administrators have none (the upgrade says so)
INSERT INTO kaireon.sessions (session_token, user_id, expires) VALUES ('tok-1', 'admin-1', now() + interval '1 day');
SQL
# what must survive: every decision and outcome row, and every audit row with its hash
state="SELECT (SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, customer_id, interaction_type, offer_id, recommendation_id, occurred_at), ',' ORDER BY id)) FROM kaireon.interaction_history)
       || ' ' || (SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, chain_seq, integrity_hash), ',' ORDER BY id)) FROM kaireon.audit_logs WHERE tenant_id IS NOT NULL)"
platform_010="SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, chain_seq, integrity_hash), ',' ORDER BY id)) FROM kaireon.audit_logs WHERE tenant_id IS NULL"
before=$(q "$state")
platform_before=$(q "$platform_010")
last=$(q "SELECT max(chain_seq) FROM kaireon.audit_logs WHERE tenant_id IS NULL")
# (the upgrade extends the platform chain: it renews the grants of the roles of role_grants)
platform_020="SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, chain_seq, integrity_hash), ',' ORDER BY id)) FROM kaireon.platform_audit_logs WHERE chain_seq <= $last"
decisions=$(q "SELECT count(*) FROM kaireon.interaction_history WHERE interaction_type = 'recommendation'")
[ "$(q "SELECT count(*) FROM kaireon.audit_logs WHERE tenant_id IS NULL")" -ge 1 ] || fail "0.1.0 has no platform chain"
[ "$decisions" -ge 4 ] || fail "0.1.0 recorded $decisions decisions"
[ "$(q "SELECT intact FROM kaireon.verify_audit_chain('acme')")" = t ] || fail "0.1.0's chain of acme does not verify"
kaireon_log "upgrade: 0.1.0 data: $before; platform chain $platform_before"
stop "$oldbin"

# ---- 2. the current library under the 0.1.0 SQL, then ALTER EXTENSION UPDATE ----
"$newbin/pg_ctl" -D "$up/data" -l "$up/data.log" -w -t 60 start >/dev/null || { cat "$up/data.log" >&2; fail "the current server did not start"; }
out=$("${psql[@]}" -c "\\set VERBOSITY verbose" -c "SELECT * FROM kaireon.recommend('acme', 'cust-42', 'web', 'hero')" up 2>&1 || true)
grep -q "ERROR:  55000: kaireon's SQL objects in this database are at version 0.1.0; the loaded library serves version 0.2.0" <<<"$out" ||
    fail "recommend under the 0.1.0 SQL was not refused with 55000: $out"
grep -q 'HINT:  Run ALTER EXTENSION kaireon UPDATE' <<<"$out" || fail "no hint to update: $out"
# so are writes of audited tables (the audit chain's tables are 0.2.0's), at commit
out=$("${psql[@]}" -c "\\set VERBOSITY verbose" -c "UPDATE kaireon.offers SET priority = priority - 1 WHERE tenant_id = 'acme'" up 2>&1 || true)
grep -q "ERROR:  55000: kaireon's SQL objects in this database are at version 0.1.0" <<<"$out" ||
    fail "an audited write under the 0.1.0 SQL was not refused with 55000: $out"
# and the maintenance jobs
out=$("${psql[@]}" -c "\\set VERBOSITY verbose" -c "SELECT * FROM kaireon.run_maintenance()" up 2>&1 || true)
grep -q "ERROR:  55000: kaireon's SQL objects in this database are at version 0.1.0" <<<"$out" ||
    fail "run_maintenance under the 0.1.0 SQL was not refused with 55000: $out"
# the 0.1.0 SQL of verify_audit_chain names the 0.1.0 symbol, which still reads its three arguments
[ "$(q "SELECT intact FROM kaireon.verify_audit_chain('acme', NULL, NULL)" 2>&1)" = t ] ||
    fail "verify_audit_chain of the 0.1.0 SQL under the current library: $(q "SELECT * FROM kaireon.verify_audit_chain('acme', NULL, NULL)" 2>&1)"
# 0.1.0 let a NaN through where 0.2.0 refuses it: the update stops naming the table and the
# column, with a hint, and changes nothing; corrected, it goes through
nan_offer=$(q "SELECT min(id) FROM kaireon.offers WHERE tenant_id = 'acme'")
nan_value=$(q "SELECT value FROM kaireon.offers WHERE tenant_id = 'acme' AND id = '$nan_offer'")
q "SET session_replication_role = replica; UPDATE kaireon.offers SET value = 'NaN' WHERE tenant_id = 'acme' AND id = '$nan_offer'" >/dev/null
out=$("${psql[@]}" -c "\\set VERBOSITY verbose" -c "ALTER EXTENSION kaireon UPDATE" up 2>&1 || true)
grep -q 'ERROR:  23514: kaireon 0.2.0 refuses NaN and Infinity in kaireon.offers: value (1 rows)' <<<"$out" ||
    fail "a NaN offer value did not stop the update with its table and column named: $out"
grep -q 'HINT:  Set those values to a finite number or NULL' <<<"$out" || fail "no hint to correct the values: $out"
[ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'kaireon'")" = 0.1.0 ] || fail "a failed update changed the version"
q "SET session_replication_role = replica; UPDATE kaireon.offers SET value = $nan_value WHERE tenant_id = 'acme' AND id = '$nan_offer'" >/dev/null
out=$(q "ALTER EXTENSION kaireon UPDATE" 2>&1)
[ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'kaireon'")" = 0.2.0 ] || fail "ALTER EXTENSION UPDATE did not reach 0.2.0: $out"
grep -q 'WARNING:  kaireon 0.2.0: 1 session(s) of platform administrators removed' <<<"$out" ||
    fail "the update did not report the platform administrator's session it removed: $out"
[ "$(q "SELECT apply_function FROM kaireon.approval_actions WHERE action = 'site.custom'")" = 'kaireon._site_apply(text,text,jsonb)' ] ||
    fail "the site's own approval function was renamed: $(q "SELECT apply_function FROM kaireon.approval_actions WHERE action = 'site.custom'")"
[ "$(q "SELECT count(*) FROM kaireon.approval_actions WHERE apply_function LIKE 'kaireon.\\_%' AND action <> 'site.custom'")" = 0 ] ||
    fail "a built-in approval action still names a function of schema kaireon"
# (the site's action and function are not part of the catalog compared below)
q "DELETE FROM kaireon.approval_actions WHERE action = 'site.custom'; DROP FUNCTION kaireon._site_apply(text, text, jsonb)" >/dev/null

# ---- 3a. the catalog equals a fresh install's ----
q "CREATE DATABASE fresh" postgres
q "CREATE EXTENSION kaireon" fresh >/dev/null
q "SELECT kaireon.grant_app_role('kaireon_upgrade_app')" fresh >/dev/null
q "CREATE DATABASE fresh010" postgres
q "CREATE EXTENSION kaireon VERSION '0.1.0'" fresh010 >/dev/null
q "ALTER EXTENSION kaireon UPDATE" fresh010 >/dev/null
q "SELECT kaireon.grant_app_role('kaireon_upgrade_app')" fresh010 >/dev/null
# objects kaireon creates at run time (tenant schemas, segment views, partitions: also those
# CREATE EXTENSION made, for the months around its day) are left out of the comparison, and
# checked by working in 3c
runtime="SELECT n.nspname::text FROM pg_namespace n JOIN kaireon.tenant_schemas s ON s.schema_name = n.nspname
         UNION ALL
         SELECT c.relnamespace::regnamespace::text || '.' || c.relname::text FROM pg_class c
          WHERE c.relnamespace IN ('kaireon'::regnamespace, 'kaireon_internal'::regnamespace)
            AND (c.relispartition
                 OR EXISTS (SELECT 1 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE i.indexrelid = c.oid AND t.relispartition)
                 OR NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
                    AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_depend d ON d.objid = i.indrelid AND d.deptype = 'e' WHERE i.indexrelid = c.oid))"
catalog() {
    q "$runtime" "$1" >"$up/$1.runtime"
    "$newbin/pg_dump" --schema-only --binary-upgrade "$1" 2>/dev/null |
        python3 "$src/test/scripts/normalise_dump.py" --exclude "$up/$1.runtime" >"$up/$1.schema"
    # the tables whose rows pg_dump keeps (pg_extension_config_dump), with their filters
    q "SELECT c::regclass::text || ' ' || coalesce(f, '') FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(c, f)
        WHERE e.extname = 'kaireon' ORDER BY 1" "$1" >>"$up/$1.schema"
}
for db in up fresh fresh010; do catalog "$db"; done
diff -u "$up/fresh.schema" "$up/up.schema" >"$up/up.diff" ||
    { cat "$up/up.diff"; fail "the upgraded catalog differs from a fresh install's (diff above: - fresh, + upgraded)"; }
diff -u "$up/fresh.schema" "$up/fresh010.schema" >"$up/fresh010.diff" ||
    { cat "$up/fresh010.diff"; fail "CREATE EXTENSION kaireon VERSION '0.1.0' and ALTER EXTENSION UPDATE do not give a fresh install's catalog (diff above: - fresh, + updated)"; }
kaireon_log "upgrade: catalogs equal ($(grep -c '^-- ' "$up/fresh.schema") objects)"

# ---- 3b. decisions and audit chains unchanged ----
after=$(q "$state")
[ "$after" = "$before" ] || fail "decisions or audit rows changed: before $before, after $after"
[ "$(q "$platform_020")" = "$platform_before" ] || fail "the platform chain changed: before $platform_before, after $(q "$platform_020")"
[ "$(q "SELECT intact FROM kaireon.verify_audit_chain('acme')")" = t ] ||
    fail "the chain of acme does not verify after the upgrade: $(q "SELECT * FROM kaireon.verify_audit_chain('acme')")"
[ "$(q "SELECT intact FROM kaireon.verify_audit_chain(NULL)")" = t ] ||
    fail "the platform chain does not verify after the upgrade: $(q "SELECT * FROM kaireon.verify_audit_chain(NULL)")"

[ "$(q "SELECT string_agg(id, ',') FROM kaireon.platform_users")" = admin-1 ] || fail "the platform administrator did not move to platform_users"
[ "$(q "SELECT string_agg(tenant_id || '/' || id, ',') FROM kaireon.users")" = acme/u-1 ] || fail "the users of acme changed"

# ---- 3c. the run-time objects work ----
"${psql[@]}" up >/dev/null <<'SQL' || fail "the run-time objects do not work after the upgrade (error above)"
DO $check$
DECLARE
    v_rec       text;
    v_n         bigint;
BEGIN
    -- (cust-42's contact policies allow no more offers today)
    SELECT recommendation_id INTO v_rec FROM kaireon.recommend('acme', 'cust-99', 'web', 'hero') WHERE rank = 1;
    IF v_rec IS NULL THEN RAISE EXCEPTION 'recommend returned nothing'; END IF;
    PERFORM kaireon.respond('acme', 'cust-99', 'click', recommendation_id => v_rec, rank => 1);
    SELECT count(*) INTO v_n FROM kaireon_t_acme.seg_affluent;
    IF v_n <> 2 THEN RAISE EXCEPTION 'segment view: % members, not 2 (cust-42, cust-99)', v_n; END IF;
    PERFORM kaireon.create_interaction_partitions(1, date '2031-01-01');
    IF to_regclass('kaireon.interaction_history_p2031_01') IS NULL THEN RAISE EXCEPTION 'no new partition'; END IF;
    INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
        VALUES ('acme', 'cust-7', 'impression', 'gold-card', 'web', timestamptz '2031-01-15 12:00Z');
    SELECT count(*) INTO v_n FROM kaireon.interaction_history_p2031_01;
    IF v_n <> 1 THEN RAISE EXCEPTION 'the new partition holds % rows, not 1', v_n; END IF;
    INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, is_predictor, ordinal)
        VALUES ('acme', 'customers', 'tier', 'text', true, false, false, 6);
    PERFORM kaireon.publish_data_schema('acme', 'customers');
    UPDATE kaireon_t_acme.ds_customers SET tier = 'gold' WHERE customer_id = 'cust-42';
    SELECT count(*) INTO v_n FROM kaireon_t_acme.seg_affluent;
    IF v_n <> 2 THEN RAISE EXCEPTION 'segment view after the new schema version: % members, not 2', v_n; END IF;
END
$check$;
SQL
[ "$(q "SELECT intact FROM kaireon.verify_audit_chain('acme')")" = t ] || fail "the chain of acme does not verify after new changes"

# ---- 3d. SQL of a version the library does not know ----
q "UPDATE pg_extension SET extversion = '9.9.9' WHERE extname = 'kaireon'" fresh
out=$("${psql[@]}" -c "\\set VERBOSITY verbose" -c "SELECT * FROM kaireon.recommend('acme', 'cust-42', 'web', 'hero')" fresh 2>&1 || true)
grep -q "ERROR:  0A000: kaireon's SQL objects in this database are at version 9.9.9, which the loaded library 0.2.0 does not know" <<<"$out" ||
    fail "SQL of version 9.9.9 was not refused with 0A000: $out"
grep -q 'DETAIL:  The library knows the SQL versions 0.1.0, 0.2.0.' <<<"$out" || fail "no list of known versions: $out"
kaireon_log "upgrade: passed"
