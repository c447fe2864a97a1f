\set c random(1, :customers)
SELECT count(*) FROM kaireon.recommend('bench', 'c' || :c, 'web', 'hero', decision_flow => 'web-adm', options => '{"dry_run": true}');
