#!/usr/bin/python3
"""Independent verifier of kaireon's audit hash chain, written from docs/audit.md alone.

Input (stdin or a file): one JSON object per line, an audit_logs row as exported by

    psql -XAt -c "SELECT json_build_object('id', id, 'tenant_id', tenant_id,
        'chain_seq', chain_seq, 'action', action, 'entity_type', entity_type,
        'entity_id', entity_id, 'user_id', user_id, 'request_id', request_id,
        'session_user_name', session_user_name, 'before', before::text,
        'after', after::text, 'changed_fields', changed_fields,
        'entity_version', entity_version, 'prev_hash', prev_hash,
        'integrity_hash', integrity_hash, 'created_at', created_at)
        FROM kaireon.audit_logs ORDER BY id"

Output: one line per chain (tenant), "intact" or the first broken row and why
(hash_mismatch, gap, chain_link_mismatch). Exit status 0 when every chain is intact.
Standard library only.
"""
import hashlib
import json
import sys
from datetime import datetime, timezone

GENESIS = "0" * 64


def canonical(row):
    """The row's fields (all but prev_hash and integrity_hash) as one JSON object:
    keys sorted, no whitespace, non-ASCII as is, created_at in UTC with
    microseconds and a Z (docs/audit.md)."""
    fields = {k: row[k] for k in row if k not in ("prev_hash", "integrity_hash")}
    created = datetime.fromisoformat(row["created_at"]).astimezone(timezone.utc)
    fields["created_at"] = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(row):
    """integrity_hash: hex SHA-256 of prev_hash followed by the canonical form."""
    return hashlib.sha256((row["prev_hash"] + canonical(row)).encode("utf-8")).hexdigest()


def verify(rows):
    """Verify one chain (its rows in id order); (verified, broken_id, reason)."""
    if not rows:
        return 0, None, None
    first = rows[0]
    expect_seq = first["chain_seq"]
    if expect_seq == 1:
        expect_prev = GENESIS
    else:
        # retention removed a prefix: an anchor row names the last removed row's hash
        anchors = [json.loads(r["after"]) for r in rows if r["action"] == "anchor"]
        match = [a for a in anchors if a["removed_through_seq"] == expect_seq - 1]
        if not match:
            return 0, first["id"], "gap"
        expect_prev = match[-1]["removed_through_hash"]
    verified = 0
    for row in rows:
        h = row_hash(row)
        if h != row["integrity_hash"]:
            return verified, row["id"], "hash_mismatch"
        if row["chain_seq"] > expect_seq:
            return verified, row["id"], "gap"
        if row["chain_seq"] < expect_seq or row["prev_hash"] != expect_prev:
            return verified, row["id"], "chain_link_mismatch"
        verified += 1
        expect_seq += 1
        expect_prev = h
    return verified, None, None


def main():
    """Read the rows, group them by chain, verify each chain, print one line per chain."""
    source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    chains = {}
    for line in source:
        if line.strip():
            row = json.loads(line)
            chains.setdefault(row["tenant_id"], []).append(row)
    ok = True
    for tenant in sorted(chains, key=lambda t: (t is not None, t or "")):
        rows = sorted(chains[tenant], key=lambda r: r["id"])
        verified, broken, reason = verify(rows)
        name = "(no tenant)" if tenant is None else tenant
        if broken is None:
            print("%s: %d rows intact" % (name, verified))
        else:
            ok = False
            print("%s: broken at id %d (%s) after %d intact rows" % (name, broken, reason, verified))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
