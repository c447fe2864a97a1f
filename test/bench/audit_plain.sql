-- baseline: the single-row update of an unaudited copy of kaireon.offers
\set i random(1, 100)
UPDATE bench.offers_plain SET priority = (priority + 1) % 100 WHERE tenant_id = 'b' || (:client_id % 8 + 1) AND id = 'o' || :i;
