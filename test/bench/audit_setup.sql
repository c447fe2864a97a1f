-- test/bench/audit_setup.sql: the data of the audit benchmark (test/bench/audit.sh).
-- Nine tenants with 100 offers each, and an unaudited copy of offers with the same columns,
-- constraints, indexes and updated_at trigger: the baseline of the same UPDATE.
INSERT INTO kaireon.tenants (id, name, slug)
    SELECT 'b' || t, 'Bench ' || t, 'b' || t FROM generate_series(0, 8) t;
INSERT INTO kaireon.offers (tenant_id, id, name, description)
    SELECT 'b' || t, 'o' || i, 'Offer ' || i, 'A typical offer description ' || i
      FROM generate_series(0, 8) t, generate_series(1, 100) i;
CREATE SCHEMA bench;
CREATE TABLE bench.offers_plain (LIKE kaireon.offers INCLUDING ALL);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON bench.offers_plain
    FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at();
INSERT INTO bench.offers_plain SELECT * FROM kaireon.offers;
-- one statement updating every offer of a tenant, for the rows verification reads
CREATE PROCEDURE bench.fill_chain(tenant text, statements int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..statements LOOP
        UPDATE kaireon.offers SET priority = (priority + 1) % 100 WHERE tenant_id = tenant;
        COMMIT;
    END LOOP;
END $$;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('verify', 'Verify', 'verify');
INSERT INTO kaireon.offers (tenant_id, id, name, description)
    SELECT 'verify', 'o' || i, 'Offer ' || i, 'A typical offer description ' || i FROM generate_series(1, 1000) i;
