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
        FROM kaireon.audit_logs ORDER BY tenant_id, chain_seq"

and the platform chain's rows the same way from kaireon.platform_audit_logs, with
'tenant_id', NULL. A chain is read in chain_seq order (ids only name rows).

Output: one line per chain (tenant), "intact" or the first broken row and why
(hash_mismatch, gap, chain_link_mismatch).

With --digest FILE (digests kept from kaireon.audit_digest, one JSON object per line),
also one line per digest: whether its chain still holds the row the digest names
(matched), does not (mismatch: rows removed from the end, or the chain rewritten), or
lost it to retention (predates_chain, with the anchor checked when it records exactly
that row). With --key HEX (a key of kaireon.audit_digest_keys, as hex) each digest's
HMAC-SHA256 signature is checked too; without one it is not.

Exit status 0 when every chain is intact and no digest is refused or mismatched.
Standard library only.
"""
import argparse
import hashlib
import hmac
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
    """Verify one chain (its rows in chain_seq order); (verified, broken_id, reason)."""
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


DIGEST_FORMAT = "kaireon-audit-digest-v1"
DIGEST_MEMBERS = {"format", "tenant_id", "id", "chain_seq", "hash", "digest_time", "key_id", "signature"}


def digest_canonical(digest):
    """The text a digest's signature signs: every member but the signature, keys sorted,
    no whitespace, non-ASCII as is (docs/audit.md, "Digests")."""
    fields = {k: v for k, v in digest.items() if k != "signature"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_signature_ok(digest, keys):
    """True/False when a key of that key_id is given, None when the signature cannot be checked."""
    key = keys.get(digest["key_id"])
    if key is None:
        return None
    mac = hmac.new(key, digest_canonical(digest).encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, digest["signature"])


def digest_status(rows, digest):
    """Whether a chain (its rows in chain_seq order) still holds the row a digest names:
    matched, mismatch or predates_chain."""
    if rows and rows[0]["chain_seq"] > digest["chain_seq"]:
        # retention removed the digest's row; the anchor records the last row it removed
        first_seq = rows[0]["chain_seq"]
        if digest["chain_seq"] < first_seq - 1:
            return "predates_chain"
        anchors = [json.loads(r["after"]) for r in rows if r["action"] == "anchor"]
        match = [a for a in anchors if a["removed_through_seq"] == first_seq - 1]
        if match and match[-1]["removed_through_id"] == digest["id"] \
                and match[-1]["removed_through_hash"] == digest["hash"] \
                and digest["chain_seq"] == first_seq - 1:
            return "matched"
        return "mismatch"
    for row in rows:
        if row["chain_seq"] == digest["chain_seq"]:
            same = row["id"] == digest["id"] and row["integrity_hash"] == digest["hash"]
            return "matched" if same else "mismatch"
    return "mismatch"


def read_digests(paths):
    """The digests in the given files, one JSON object per line."""
    digests = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    digests.append(json.loads(line))
    return digests


def main():
    """Read the rows, group them by chain, verify each chain, print one line per chain,
    then check each digest against its chain."""
    parser = argparse.ArgumentParser(description="Verify kaireon audit chains (docs/audit.md).")
    parser.add_argument("rows", nargs="?", help="exported audit rows, one JSON object per line (default: stdin)")
    parser.add_argument("--digest", action="append", default=[], help="file of kept digests, one per line")
    parser.add_argument("--key", action="append", default=[], help="a digest key, as hex")
    args = parser.parse_args()
    source = open(args.rows, encoding="utf-8") if args.rows else sys.stdin
    chains = {}
    for line in source:
        if line.strip():
            row = json.loads(line)
            chains.setdefault(row["tenant_id"], []).append(row)
    ok = True
    for tenant in sorted(chains, key=lambda t: (t is not None, t or "")):
        rows = sorted(chains[tenant], key=lambda r: r["chain_seq"])
        verified, broken, reason = verify(rows)
        name = "(no tenant)" if tenant is None else tenant
        if broken is None:
            print("%s: %d rows intact" % (name, verified))
        else:
            ok = False
            print("%s: broken at id %d (%s) after %d intact rows" % (name, broken, reason, verified))

    keys = {}
    for key_hex in args.key:
        key = bytes.fromhex(key_hex)
        keys[hashlib.sha256(key).hexdigest()[:16]] = key
    for digest in read_digests(args.digest):
        name = "(no tenant)" if digest.get("tenant_id") is None else digest["tenant_id"]
        if set(digest) != DIGEST_MEMBERS or digest["format"] != DIGEST_FORMAT:
            ok = False
            print("%s: digest refused: not a %s digest" % (name, DIGEST_FORMAT))
            continue
        signed = digest_signature_ok(digest, keys)
        if signed is False:
            ok = False
            print("%s: digest at id %d refused: signature does not match" % (name, digest["id"]))
            continue
        rows = sorted(chains.get(digest["tenant_id"], []), key=lambda r: r["chain_seq"])
        status = digest_status(rows, digest)
        if status == "mismatch":
            ok = False
        print("%s: digest at id %d (chain_seq %d): %s (signature %s)"
              % (name, digest["id"], digest["chain_seq"], status, "checked" if signed else "not checked"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
