\set c random(1, :customers)
SELECT count(*) FROM kaireon_bench.recommend_floor('bench', 'c' || :c, 'web', 'hero', options => '{"dry_run": true}');
