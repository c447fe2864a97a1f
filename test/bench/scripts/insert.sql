\set c random(1, 100000)
INSERT INTO public.bench_insert (customer_id) VALUES ('c' || :c);
