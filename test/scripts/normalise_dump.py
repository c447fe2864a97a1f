#!/usr/bin/env python3
"""test/scripts/normalise_dump.py [--exclude FILE] < dump > normalised

Normalises `pg_dump --schema-only --binary-upgrade` output so that the catalog of a database
upgraded with ALTER EXTENSION kaireon UPDATE and the catalog of a fresh install of the same
version compare equal exactly when they are the same (docs/upgrades.md, "Comparing catalogs").
--binary-upgrade makes pg_dump write the extension's member objects (a plain dump writes only
CREATE EXTENSION). The rules:
  - the dump is cut into its entries (at pg_dump's "-- Name: ...; Type: ...; Schema: ..."
    headers) and the entries are sorted: the order of creation is not part of the catalog;
  - OIDs, relfilenodes and the other binary-upgrade bookkeeping (SELECT
    pg_catalog.binary_upgrade_*, the pg_attribute updates of dropped columns) are removed, and
    so are dropped columns ("........pg.dropped.N........");
  - the column lines of CREATE TABLE are sorted: a column added by ALTER TABLE ADD COLUMN comes
    last in the upgraded table and wherever the install script puts it in a fresh one, and
    kaireon never depends on column positions (no INSERT without a column list, no SELECT *
    into a fixed row type of a kaireon table);
  - the GRANT / REVOKE lines of an object's privileges (an ACL entry) are sorted: pg_dump
    writes them in the order the privileges were granted, which is history, not catalog;
  - empty lines, SET lines, psql meta-commands (\restrict) and pg_dump's comments other than the entry headers are removed;
  - sequence values (SEQUENCE SET) are left out: they are data;
  - with --exclude FILE, entries about the objects named in FILE (one "schema.name" or
    "schema" per line: objects the extension creates at run time, such as partitions and
    tenant schemas) are left out.
Everything else (names of constraints, indexes, sequences, defaults, owners, grants,
comments, policies, triggers, function bodies) must match.
"""
import re
import sys

HEADER = re.compile(r'^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)$')


def entries(lines):
    cur = None
    for line in lines:
        m = HEADER.match(line)
        if m:
            if cur:
                yield cur
            cur = {'name': m.group(1), 'type': m.group(2), 'schema': m.group(3),
                   'owner': m.group(4), 'body': []}
            continue
        if cur is not None:
            cur['body'].append(line)
    if cur:
        yield cur


def clean(body):
    out = []
    in_table = False
    cols = []
    for line in body:
        s = line.rstrip('\n')
        if not s.strip() or s.startswith('--') or s.startswith('\\') or s.startswith('SET ') or \
                s.startswith('SELECT pg_catalog.set_config(') or 'binary_upgrade_' in s:
            continue
        if 'pg.dropped.' in s:
            continue
        if re.match(r'^UPDATE pg_catalog\.pg_(attribute|class)|^ *AND attrelid|^ *WHERE (attname|oid) = |^SET rel(frozenxid|minmxid|kind)|^SET attlen', s):
            continue
        if in_table:
            if re.match(r'^\)', s):
                out.extend(sorted(cols))
                out.append(s)
                in_table = False
                cols = []
            else:
                cols.append(s.rstrip(','))
            continue
        if re.match(r'^CREATE (UNLOGGED )?TABLE .*\($', s):
            in_table = True
        out.append(s)
    return out


def main():
    exclude = set()
    args = sys.argv[1:]
    if args[:1] == ['--exclude']:
        with open(args[1]) as f:
            exclude = {l.strip() for l in f if l.strip()}
    result = []
    for e in entries(sys.stdin):
        # "name", "table constraint", or "TABLE name" / "SCHEMA name" (ACL, COMMENT)
        words = e['name'].split(' ')
        names = {words[0]}
        if words[0].isupper() and len(words) > 1:
            names.add(words[1])
        if e['schema'] in exclude or any(e['schema'] + '.' + n in exclude or
                                         (e['schema'] == '-' and n in exclude) for n in names):
            continue
        if e['type'] == 'SEQUENCE SET':      # a sequence's value: data, not catalog
            continue
        body = clean(e['body'])
        if e['type'] == 'ACL':              # the grants of an object, in the order they were made
            body = sorted(body)
        if not body:
            continue
        result.append('-- %s %s.%s (owner %s)\n%s\n' % (e['type'], e['schema'], e['name'],
                                                      e['owner'], '\n'.join(body)))
    sys.stdout.write(''.join(sorted(result)))


main()
