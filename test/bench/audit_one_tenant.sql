-- audited: every client changes offers of the same tenant (one chain)
\set i random(1, 100)
UPDATE kaireon.offers SET priority = (priority + 1) % 100 WHERE tenant_id = 'b0' AND id = 'o' || :i;
