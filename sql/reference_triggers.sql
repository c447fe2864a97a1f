-- The reference triggers (config/references.c) refuse to run fired other than as they are
-- meant to (timing, row level, operation) or with arguments not in their groups: each
-- message names the function and what it needs.
\set VERBOSITY terse
CREATE TEMP TABLE reftrig (tenant_id text, x text);

-- on_delete_set_null: an AFTER DELETE row trigger with (table, column, referenced column) triples
CREATE TRIGGER t BEFORE DELETE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null();
INSERT INTO reftrig VALUES ('t1', 'a');
DELETE FROM reftrig;
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t AFTER INSERT ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null();
INSERT INTO reftrig VALUES ('t1', 'a');
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t AFTER DELETE ON reftrig FOR EACH STATEMENT EXECUTE FUNCTION kaireon.on_delete_set_null();
DELETE FROM reftrig;
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t AFTER DELETE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('a', 'b');
DELETE FROM reftrig;
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t AFTER DELETE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null();
DELETE FROM reftrig;
DROP TRIGGER t ON reftrig;

-- check_references: a BEFORE INSERT OR UPDATE row trigger with (column, table, referenced column) triples
CREATE TRIGGER t AFTER INSERT ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_references('x', 'offers', 'id');
INSERT INTO reftrig VALUES ('t1', 'a');
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t BEFORE DELETE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_references('x', 'offers', 'id');
INSERT INTO reftrig VALUES ('t1', 'a');
DELETE FROM reftrig;
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t BEFORE UPDATE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_references('x', 'offers', 'id', 'y');
INSERT INTO reftrig VALUES ('t1', 'a');
UPDATE reftrig SET x = 'b';
DROP TRIGGER t ON reftrig;

-- checked_reference_changed: an AFTER DELETE OR UPDATE row trigger with (table, column, referenced column, action) quadruples
CREATE TRIGGER t AFTER INSERT ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon_internal._checked_reference_changed('h', 'x', 'x', 'set null');
INSERT INTO reftrig VALUES ('t1', 'a');
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t BEFORE UPDATE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon_internal._checked_reference_changed('h', 'x', 'x', 'set null');
UPDATE reftrig SET x = 'c';
DROP TRIGGER t ON reftrig;
CREATE TRIGGER t AFTER UPDATE ON reftrig FOR EACH ROW EXECUTE FUNCTION kaireon_internal._checked_reference_changed('h', 'x', 'x');
UPDATE reftrig SET x = 'c';
DROP TRIGGER t ON reftrig;

DROP TABLE reftrig;
