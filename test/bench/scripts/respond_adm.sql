\set i random(1, 3000)
SELECT kaireon.respond('bench', r.customer_id, 'click', recommendation_id => r.recommendation_id, rank => r.rank)
  FROM public.bench_recs r WHERE r.flow = 'web-adm' AND r.i = :i;
