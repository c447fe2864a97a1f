/*
 * decision/identity.c
 *	  Which customer a request is for (docs/identity.md): the identifier a
 *	  recommend or respond gives (a customer id, an e-mail address, a device
 *	  id, a session id, ...) resolved to its canonical customer through
 *	  kaireon.identity_links, and the per-customer decision lock, taken on
 *	  that customer.
 *
 * Protocol.
 *	- Resolution runs only for a tenant whose compiled configuration says
 *	  it has identity links (cfg->identity_links; the first link a tenant
 *	  writes renews its configuration version: config/invalidate.c).  It is
 *	  one indexed lookup per request (identity_links by tenant and
 *	  identifier value), none per candidate, before anything reads the
 *	  customer.  An identifier that is no link's value is the customer id
 *	  itself (as without links); one linked to several customers (under
 *	  different types) is refused unless the request says its type.
 *	- A recording decision then locks the canonical customer's row of
 *	  kaireon.decision_locks until commit, so decisions for one person
 *	  serialise whichever of its identifiers they were given.  The row of an
 *	  identifier that kaireon.link_identity merged into another customer
 *	  names that customer (merged_into), and the decision moves on to it: a
 *	  decision that resolved its identifier just before a concurrent link
 *	  committed still decides, and counts caps, for the canonical customer.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "util/spi.h"
#include "decision/decision.h"

/* The most merges a decision lock follows (link_identity keeps the graph flat: one is the rule). */
#define KAIREON_MAX_MERGE_HOPS 8

/* The most links one identifier value may have (one per identifier type). */
#define KAIREON_MAX_VALUE_LINKS 16

/*
 * Look an identifier up in the tenant's links (of the given type, or of any
 * type when type is NULL): out->customer_id becomes the canonical id of the
 * link(s) whose identifier value it is; it stays as it is when there is none.
 * An identifier linked to several customers is refused (22023).  fresh: with
 * a new snapshot (after a decision lock: it sees the link that merged the
 * identifier while the decision waited).
 */
static void
lookup(const char *tenant_id, const char *given, const char *type, const char *what, bool fresh,
	   KIdentity *out)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	const char *canonical = NULL;
	const char *matched = NULL;

	if (plan == NULL)
		plan = kspi_prepare_keep(
			"SELECT l.canonical_id, l.identifier_type FROM kaireon.identity_links l "
			" WHERE l.tenant_id = $1 AND l.identifier_value = $2 AND ($3::text IS NULL OR l.identifier_type = $3) "
			" ORDER BY l.identifier_type LIMIT " CppAsString2(KAIREON_MAX_VALUE_LINKS), 3, types);
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(given);
	if (type != NULL)
		args[2] = CStringGetTextDatum(type);
	else
		nulls[2] = 'n';
	if (kspi_execute_plan(plan, args, nulls, !fresh, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: resolving an identifier failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *c = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (canonical == NULL)
		{
			canonical = c;
			matched = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}
		else if (strcmp(canonical, c) != 0)
		{
			StringInfoData found;

			initStringInfo(&found);
			for (uint64 k = 0; k < SPI_processed; k++)
				appendStringInfo(&found, "%s%s", k ? ", " : "",
								 SPI_getvalue(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 2));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s \"%s\" is linked to more than one customer of tenant \"%s\" (as %s)",
							what, given, tenant_id, found.data),
					 errhint("Give its identifier type (identifierType, or options.identifier_type) to say which link is meant.")));
		}
	}
	if (canonical == NULL || strcmp(canonical, given) == 0)
		return;					/* no link: the identifier is the customer id (as without links) */
	out->customer_id = canonical;
	out->type = matched;
	out->resolved = true;
}

/*
 * Resolve an identifier to its canonical customer: out->customer_id is the
 * canonical id of the tenant's link(s) whose identifier value it is (of the
 * given type, or of any type when type is NULL), else the identifier itself.
 * type must be an identifier type (22023 naming what and type otherwise);
 * an identifier linked to several customers is refused (22023) when no type
 * says which link is meant.  No query for a tenant without links.
 */
void
kaireon_resolve_identity(KTenantConfig *cfg, const char *given, const char *type, const char *what,
						 KIdentity *out)
{
	if (type != NULL && kaireon_type_index(kaireon_identifier_type_names, type) < 0)
	{
		StringInfoData list;

		initStringInfo(&list);
		for (int i = 0; kaireon_identifier_type_names[i] != NULL; i++)
			appendStringInfo(&list, "%s%s", i ? ", " : "", kaireon_identifier_type_names[i]);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("identifier type \"%s\" of %s is not an identifier type", type, what),
				 errhint("Identifier types: %s (or leave it out to look the identifier up under every type).",
						 list.data)));
	}
	out->given = given;
	out->type = type;
	out->customer_id = given;
	out->resolved = false;
	if (cfg->identity_links)	/* a tenant without links pays nothing */
		lookup(cfg->tenant_id, given, type, what, false, out);
}

/*
 * The identity of a decision as JSON: {customerId, identifier, identifierType}
 * (what the answers and the recorded context say as resolvedFrom).
 */
json_t *
kaireon_identity_json(const KIdentity *id)
{
	return json_pack("{s:s,s:s,s:s?}", "customerId", id->customer_id, "identifier", id->given,
					 "identifierType", id->type);
}

/* Note a resolved identity in a request's context as resolvedFrom; 22023 when the context says otherwise. */
void
kaireon_identity_note(json_t *context, const KIdentity *id, const char *what)
{
	json_t	   *note;
	json_t	   *old;

	if (!id->resolved || context == NULL)
		return;
	note = kaireon_identity_json(id);
	old = json_object_get(context, "resolvedFrom");
	if (old != NULL && !json_equal(old, note))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.resolvedFrom must not be given", what),
				 errhint("kaireon writes resolvedFrom: the identifier given and the canonical customer it resolved to.")));
	json_object_set_new(context, "resolvedFrom", note);
}

/*
 * The decision's customer (before anything reads it): the canonical customer
 * of the identifier given (kaireon_resolve_identity), noted in the context.
 * A campaign's customers (batch) are taken as they are listed.
 */
void
kaireon_decide_identity(KTenantConfig *cfg, KDecideArgs *args)
{
	if (args->batch)
	{
		args->identity.given = args->identity.customer_id = args->customer_id;
		return;
	}
	kaireon_resolve_identity(cfg, args->customer_id, args->identifier_type,
							 args->identifier_what ? args->identifier_what : "customer_id", &args->identity);
	args->customer_id = args->identity.customer_id;
	kaireon_identity_note(args->context, &args->identity, "context");
}

/*
 * Serialise recording decisions for one customer: upsert the customer's row
 * of kaireon.decision_locks, which stays locked until commit.  A concurrent
 * decision for the customer waits for it; in READ COMMITTED it then reads the
 * history the first one wrote (the queries that follow take fresh
 * snapshots), and in REPEATABLE READ or SERIALIZABLE it fails with a
 * serialization error (40001) instead of deciding on a stale history.  When
 * the row says the customer was merged into another (kaireon.link_identity),
 * the identifier is looked up again (a fresh snapshot sees the link that
 * merged it while this decision waited) and, while it is linked, its
 * customer is locked and decided for instead.
 */
void
kaireon_lock_customer(const char *tenant_id, KDecideArgs *args)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		v[3];

	/* the time is a parameter: no function in the ON CONFLICT update (Citus needs that) */
	if (plan == NULL)
		plan = kspi_prepare_keep(
			"INSERT INTO kaireon.decision_locks AS l (tenant_id, customer_id, decisions, last_decision_at) "
			"VALUES ($1, $2, 1, $3) ON CONFLICT (tenant_id, customer_id) "
			"DO UPDATE SET decisions = l.decisions + CASE WHEN l.merged_into IS NULL THEN 1 ELSE 0 END, "
			"    last_decision_at = EXCLUDED.last_decision_at "
			"RETURNING l.merged_into", 3, types);
	for (int hop = 0;; hop++)
	{
		char	   *into;

		v[0] = CStringGetTextDatum(tenant_id);
		v[1] = CStringGetTextDatum(args->customer_id);
		v[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		if (kspi_execute_plan(plan, v, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
			elog(ERROR, "kaireon: could not lock the customer's decisions");
		into = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (into == NULL)
			return;
		if (hop >= KAIREON_MAX_MERGE_HOPS)
			elog(ERROR, "kaireon: customer \"%s\" of tenant \"%s\" was merged more than %d times over",
				 args->customer_id, tenant_id, KAIREON_MAX_MERGE_HOPS);
		/* merged by a link (maybe one that committed while this decision waited): its customer */
		{
			KIdentity	again = args->identity;

			/* the request's type names the identifier it gave, not a customer it resolved to */
			lookup(tenant_id, args->customer_id,
				   hop == 0 && !args->identity.resolved ? args->identifier_type : NULL,
				   args->identifier_what ? args->identifier_what : "customer_id", true, &again);
			if (strcmp(again.customer_id, args->customer_id) == 0)
				return;			/* its link was deleted since: the identifier is the customer again */
			args->customer_id = again.customer_id;
			args->identity.customer_id = again.customer_id;
			if (!args->identity.resolved)
				args->identity.type = again.type;
			args->identity.resolved = true;
		}
		if (args->context != NULL)
			json_object_del(args->context, "resolvedFrom");
		kaireon_identity_note(args->context, &args->identity, "context");
	}
}
