/*
 * scoring/models/train_examples.c
 *	  The examples of training and drift checks (train.c), read through SPI
 *	  from interaction history and the customer data.
 *
 * Examples are the tenant's outcome interactions (interaction_history rows
 * of type outcome) whose outcome type is classified positive (label 1) or
 * negative (label 0; neutral outcomes are left out), with the customer's
 * attributes from the tenant's published customer data schema (ds_ table,
 * joined on its primary key) merged with the interaction's context (context
 * wins), as recommend sees them.
 */
#include "postgres.h"

#include "util/json.h"			/* first: before utils/builtins.h */

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "scoring/models/model.h"
#include "scoring/models/train_internal.h"

/*
 * The SQL of the examples of a tenant: label and merged features of each
 * positive or negative outcome in [$2, $3), optionally of offer $4.
 */
static char *
examples_sql(const char *tenant_id, const char *data_schema_id)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = "  ";
	int			rc;
	char	   *join = "";
	char	   *feats = "ih.context";

	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = data_schema_id ? CStringGetTextDatum(data_schema_id) : (Datum) 0;
	nulls[1] = data_schema_id ? ' ' : 'n';
	rc = kspi_execute_with_args(
							    "SELECT t.slug, ds.table_name, f.name FROM kaireon.data_schemas ds "
							    "JOIN kaireon.tenants t ON t.id = ds.tenant_id "
							    "JOIN kaireon.schema_fields f ON f.tenant_id = ds.tenant_id AND f.schema_id = ds.id AND f.is_primary_key "
							    "WHERE ds.tenant_id = $1 AND ds.status = 'published' AND ds.entity_type = 'customer' "
							    "AND ds.schema_type = 'entity' AND ($2::text IS NULL OR ds.id = $2) ORDER BY ds.name",
							    2, argtypes, args, nulls, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading data_schemas failed");
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant \"%s\" has %d published customer data schemas; which one holds the features is ambiguous",
						tenant_id, (int) SPI_processed),
				 errhint("Name it with options => '{\"dataSchemaId\": \"...\"}' or config.training.dataSchemaId.")));
	if (SPI_processed == 0 && data_schema_id != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no published customer data schema \"%s\"", tenant_id, data_schema_id),
				 errhint("Publish it with kaireon.publish_data_schema first.")));
	if (SPI_processed == 1)
	{
		char	   *slug = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		char	   *pk = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

		join = psprintf(" LEFT JOIN %s.%s c ON c.tenant_id = ih.tenant_id AND c.%s::text = ih.customer_id",
						quote_identifier(psprintf("kaireon_t_%s", slug)), quote_identifier(table),
						quote_identifier(pk));
		feats = "(coalesce(to_jsonb(c) - 'tenant_id', '{}'::jsonb) || ih.context)";
	}
	return psprintf(
					"SELECT x.y, x.features FROM (SELECT CASE coalesce(ot.classification, "
					"CASE ih.outcome_type_key WHEN 'click' THEN 'positive' WHEN 'conversion' THEN 'positive' "
					"WHEN 'share' THEN 'positive' WHEN 'save' THEN 'positive' WHEN 'not_interested' THEN 'negative' "
					"WHEN 'opt_out' THEN 'negative' WHEN 'dismiss' THEN 'negative' WHEN 'complaint' THEN 'negative' "
					"ELSE 'neutral' END) WHEN 'positive' THEN 1 WHEN 'negative' THEN 0 END AS y, "
					"%s AS features, ih.occurred_at, ih.id "
					"FROM kaireon.interaction_history ih "
					"LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = ih.tenant_id AND ot.key = ih.outcome_type_key "
					"AND ot.deleted_at IS NULL%s "
					"WHERE ih.tenant_id = $1 AND ih.interaction_type = 'outcome' "
					"AND ih.occurred_at >= $2 AND ih.occurred_at < $3 AND ($4::text IS NULL OR ih.offer_id = $4)) x "
					"WHERE x.y IS NOT NULL ORDER BY x.occurred_at, x.id",
					feats, join);
}

/* Load the examples of [since, until) with the values of the named features. */
Examples *
kaireon_train_load_examples(const char *tenant_id, const char *data_schema_id, TimestampTz since,
							TimestampTz until, const char *offer_id, char **names, int nf)
{
	Examples   *ex = palloc0(sizeof(Examples));
	MemoryContext caller = CurrentMemoryContext;
	Oid			argtypes[4] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";
	char	   *sql;
	Portal		portal;
	SPIPlanPtr	plan;
	int			nest;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sql = examples_sql(tenant_id, data_schema_id);
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = TimestampTzGetDatum(since);
	args[2] = TimestampTzGetDatum(until);
	args[3] = offer_id ? CStringGetTextDatum(offer_id) : (Datum) 0;
	nulls[3] = offer_id ? ' ' : 'n';
	/* prepared, opened and fetched under kaireon's search_path (util/spi.c) */
	nest = kspi_pin_search_path();
	plan = SPI_prepare(sql, 4, argtypes);
	if (plan == NULL)
		elog(ERROR, "preparing the examples query failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, nulls, true);
	ex->nf = nf;
	for (;;)
	{
		uint64		k;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		{
			MemoryContext old = MemoryContextSwitchTo(caller);
			int			need = ex->n + (int) SPI_processed;

			if (ex->n == 0)
			{
				ex->values = palloc(sizeof(KaireonValue) * Max(nf, 1) * need);
				ex->y = palloc(sizeof(double) * need);
			}
			else
			{
				ex->values = repalloc_huge(ex->values, sizeof(KaireonValue) * Max(nf, 1) * need);
				ex->y = repalloc_huge(ex->y, sizeof(double) * need);
			}
			for (k = 0; k < SPI_processed; k++)
			{
				bool		isnull;
				HeapTuple	tup = SPI_tuptable->vals[k];
				Jsonb	   *jb;
				int			i;

				ex->y[ex->n] = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
				jb = DatumGetJsonbP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
				for (i = 0; i < nf; i++)
				{
					JsonbValue	vbuf;
					JsonbValue *v = isnull ? NULL :
						getKeyJsonValueFromContainer(&jb->root, names[i], strlen(names[i]), &vbuf);

					kaireon_value_from_jsonb(v, &ex->values[(size_t) ex->n * nf + i]);
				}
				ex->n++;
			}
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	kspi_unpin_search_path(nest);
	SPI_finish();
	return ex;
}
