-- kaireon install script, part 86: kaireon.platform_users (30_operator.sql) is audited like
-- kaireon.users, with the same trigger options, its rows in the chain without a tenant
-- (tenant=none). Its triggers are attached here, after the audit functions (85_audit.sql),
-- the way 85_audit.sql attaches those of the tables of kaireon.audited_tables().
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON kaireon.platform_users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION kaireon.audit_capture('tenant=none', 'redact=password_hash', 'redact=mfa_secret',
                                           'redact=mfa_backup_codes', 'ignore=failed_login_attempts',
                                           'ignore=locked_until');
CREATE TRIGGER audit_refuse_truncate BEFORE TRUNCATE ON kaireon.platform_users
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_refuse_truncate();
