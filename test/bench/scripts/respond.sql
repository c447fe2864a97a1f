\set c random(1, :customers)
\set o random(1, :offers)
SELECT kaireon.respond('bench', 'c' || :c, 'click', offer_id => 'o' || :o);
