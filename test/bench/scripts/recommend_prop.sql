\set c random(1, :customers)
SELECT count(*) FROM kaireon.recommend('bench', 'c' || :c, 'web', 'hero', decision_flow => 'web-propensity', options => '{"dry_run": true}');
