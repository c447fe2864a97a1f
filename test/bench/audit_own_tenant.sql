-- audited: each client changes offers of its own tenant (eight chains)
\set i random(1, 100)
UPDATE kaireon.offers SET priority = (priority + 1) % 100 WHERE tenant_id = 'b' || (:client_id % 8 + 1) AND id = 'o' || :i;
