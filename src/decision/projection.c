/*
 * decision/projection.c
 *	  kaireon.recommend builds no explanations for a query that reads none: a
 *	  planner hook marks such calls with options.explain false before the
 *	  query is planned (docs/recommend.md#explanations-when-asked).
 *
 * Why: a function returning rows cannot see which of its columns the query
 * around it reads, and the explanations are the largest part of a decision
 * built only for the caller (about a sixth of a dry run at scale S,
 * docs/performance.md).  A caller could say so (options.explain false); the
 * planner can say it for every query that never reads the column.
 *
 * Protocol.  The hook runs before the previous planner hook (or the standard
 * planner) on every query planned, and changes a call only where all of these
 * hold, so that no query can tell the difference but by its cost:
 *	1. kaireon.unread_explanations is on;
 *	2. the call is a range table function of its own (FROM kaireon.recommend(...),
 *	   not ROWS FROM with others, not in a target list), of the function of
 *	   the extension kaireon with recommend's eight arguments;
 *	3. no Var of its query or of a query nested in it reads its explanation
 *	   column or its whole row, directly or through a join's alias (a join's
 *	   whole row counts as reading every column of both sides);
 *	4. its options (recommend's default when left out: the arguments are
 *	   completed first, below) are a constant JSON object without an "explain"
 *	   member, or a parameter (a prepared statement's, a PL/pgSQL variable):
 *	   an explicit explain, even an invalid one, is left to recommend to
 *	   honour or to reject; any other expression is left alone, the call then
 *	   builds its explanations as before.
 * The change: options gets "explain": false (the last constant merged, up to
 * 1 kB, kept per backend with what it became); a parameter is wrapped in a
 * CASE that adds it when the value is an object without "explain" and passes
 * any other value unchanged (folded to a constant where the planner knows the
 * value, else a few thousand instructions per execution), only where PUBLIC
 * may execute the four built-in functions the CASE calls (a change to one of
 * them, a REVOKE, plans every kept plan again).  It is made on the query the
 * planner was given, which the planner may change anyway: a plan kept by a
 * prepared statement has it once (a constant costs nothing per execution);
 * EXPLAIN VERBOSE shows it.
 * Arguments completed.  Every call of recommend in a range table function of
 * its own (whatever the setting; before it is marked) gets its arguments in
 * order, its named ones placed and the ones left out filled with copies of
 * its defaults, read from pg_proc once per backend: the planner would
 * otherwise read and parse those defaults again from their text for every
 * query planned (expand_function_arguments; the parser already did it once).
 * It is what the planner does with them (reorder_function_arguments): the
 * same call, the same plan, the same EXPLAIN VERBOSE.
 * recommend's function is found once per backend and forgotten on any
 * pg_proc invalidation (a function created, changed, dropped; ALTER
 * EXTENSION UPDATE re-creates functions) and on a relcache invalidation of
 * its row type (kaireon.recommendation's attributes changed).  A query of a
 * database without it is not walked.  The setting is read when a query is
 * planned: a plan kept before it was turned off keeps its change.
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

#include "util/inval.h"
#include "util/kept.h"
#include "decision/projection.h"

/* kaireon.recommend's arguments: the position of options among them, and their count */
#define RECOMMEND_NARGS 8
#define RECOMMEND_OPTIONS_ARG 7

/* ... and their types */
static const Oid recommend_argtypes[RECOMMEND_NARGS] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID, JSONBOID};

static planner_hook_type prev_planner_hook = NULL;
static bool unread_explanations = true;

/* recommend's function, its row type's relation and explanation column, found once (recommend_found) */
static bool recommend_found = false;
static Oid	recommend_oid = InvalidOid;
static Oid	recommendation_rel = InvalidOid;
static AttrNumber explanation_attno = InvalidAttrNumber;

/* its defaults (pg_proc.proargdefaults, parsed) for its last recommend_ndefaults arguments, in defaults_cxt */
static List *recommend_defaults = NIL;
static int	recommend_ndefaults = 0;
static MemoryContext defaults_cxt = NULL;

/* The built-in functions unexplained_param's CASE calls (their EXECUTE right is checked at planning). */
static const Oid case_functions[] = {F_TEXTEQ, F_JSONB_TYPEOF, F_JSONB_EXISTS, F_JSONB_CONCAT};

/* Their pg_proc syscache hash values, taken when a plan first asks about them (none before: no plan has the CASE). */
static uint32 case_function_hash[lengthof(case_functions)];
static bool case_hashes_known = false;

/*
 * pg_proc invalidation callback: find recommend's function again at the next
 * query that could call it.  A change to one of the CASE's functions (a
 * REVOKE of EXECUTE from PUBLIC) makes every kept plan be planned again, so
 * none keeps a CASE its planning would no longer add.
 */
static void
projection_proc_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	recommend_found = false;
	for (int i = 0; case_hashes_known && i < (int) lengthof(case_functions); i++)
		if (hashvalue == 0 || hashvalue == case_function_hash[i])
		{
			ResetPlanCache();
			return;
		}
}

/* Relcache callback (util/inval): the row type's attributes may have changed; find its column again. */
static void
projection_relcache_cb(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == recommendation_rel)
		recommend_found = false;
}

/* Read function fn's defaults into recommend_defaults (a copy kept in defaults_cxt). */
static void
load_defaults(Oid fn)
{
	HeapTuple	tup;
	Datum		stored;
	bool		isnull;

	if (defaults_cxt == NULL)
		defaults_cxt = AllocSetContextCreate(CacheMemoryContext, "kaireon recommend defaults", ALLOCSET_SMALL_SIZES);
	MemoryContextReset(defaults_cxt);
	recommend_defaults = NIL;
	recommend_ndefaults = 0;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		return;
	stored = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proargdefaults, &isnull);
	if (!isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(defaults_cxt);
		char	   *str = TextDatumGetCString(stored);
		List	   *defaults = castNode(List, stringToNode(str));
		int			first = RECOMMEND_NARGS - list_length(defaults);
		bool		fits;

		/*
		 * kept only if it is what pg_proc says it is: one expression of the
		 * argument's type for each of the last pronargdefaults (else the
		 * planner's own expansion does the work, and reports what is wrong)
		 */
		fits = list_length(defaults) == ((Form_pg_proc) GETSTRUCT(tup))->pronargdefaults && first >= 0;
		for (int i = 0; fits && i < list_length(defaults); i++)
			fits = exprType(list_nth(defaults, i)) == recommend_argtypes[first + i];
		if (fits)
		{
			recommend_defaults = defaults;
			recommend_ndefaults = list_length(defaults);
		}
		MemoryContextSwitchTo(old);
	}
	ReleaseSysCache(tup);
}

/*
 * kaireon.recommend's function in this database, InvalidOid where the
 * extension kaireon does not own one (not installed, being created); its
 * explanation column's number in *attno.
 */
static Oid
recommend_function(AttrNumber *attno)
{
	if (!recommend_found)
	{
		Oid			ext,
					nsp,
					fn = InvalidOid,
					rel = InvalidOid;
		AttrNumber	att = InvalidAttrNumber;

		/*
		 * found first: an invalidation the lookups' own catalog locks take in
		 * clears it again, so the next query looks again rather than keeping
		 * what an older catalog state gave (and, should a lookup fail, nothing
		 * is marked until the next invalidation)
		 */
		recommend_found = true;
		recommend_oid = InvalidOid;
		recommend_defaults = NIL;
		recommend_ndefaults = 0;
		ext = get_extension_oid("kaireon", true);
		nsp = get_namespace_oid("kaireon", true);

		/* by the catalog, not by LookupFuncName: no check of the planning user's USAGE on the schema */
		if (OidIsValid(ext) && OidIsValid(nsp))
			fn = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum("recommend"),
								 PointerGetDatum(buildoidvector(recommend_argtypes, RECOMMEND_NARGS)), ObjectIdGetDatum(nsp));
		if (OidIsValid(fn) && getExtensionOfObject(ProcedureRelationId, fn) == ext)
		{
			rel = get_typ_typrelid(get_func_rettype(fn));
			att = OidIsValid(rel) ? get_attnum(rel, "explanation") : InvalidAttrNumber;
		}
		if (att != InvalidAttrNumber)
			load_defaults(fn);
		recommend_oid = att != InvalidAttrNumber ? fn : InvalidOid;
		recommendation_rel = rel;
		explanation_attno = att;
	}
	*attno = explanation_attno;
	return recommend_oid;
}

/* What reads_walker looks for: column attno (or the whole row) of range table entry rti of query top. */
typedef struct ReadsColumn
{
	Query	   *top;
	int			rti;
	AttrNumber	attno;
	Index		levelsup;		/* how deep under top the walk is */
} ReadsColumn;

static bool reads_walker(Node *node, ReadsColumn *ctx);

/* Does a Var of top's level (varno, attno) read the column: itself, or a join's alias of it? */
static bool
var_reads(ReadsColumn *ctx, int varno, AttrNumber attno)
{
	RangeTblEntry *rte;
	Index		saved = ctx->levelsup;
	bool		reads;

	if (varno == ctx->rti)
		return attno == ctx->attno || attno == InvalidAttrNumber;
	if (varno < 1 || varno > list_length(ctx->top->rtable))
		return false;
	rte = rt_fetch(varno, ctx->top->rtable);
	if (rte->rtekind != RTE_JOIN)
		return false;
	/* a join's column is an alias of its inputs' (Vars of top's level); its whole row, of all of them */
	ctx->levelsup = 0;
	if (attno == InvalidAttrNumber)
		reads = reads_walker((Node *) rte->joinaliasvars, ctx);
	else
		reads = attno <= list_length(rte->joinaliasvars) &&
			reads_walker((Node *) list_nth(rte->joinaliasvars, attno - 1), ctx);
	ctx->levelsup = saved;
	return reads;
}

/* Walker: true where a Var reads the column (ReadsColumn), in top or in any query nested in it. */
static bool
reads_walker(Node *node, ReadsColumn *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		return v->varlevelsup == ctx->levelsup && var_reads(ctx, v->varno, v->varattno);
	}
	if (IsA(node, Query))
	{
		bool		reads;

		ctx->levelsup++;
		reads = query_tree_walker((Query *) node, reads_walker, ctx, QTW_IGNORE_JOINALIASES);
		ctx->levelsup--;
		return reads;
	}
	return expression_tree_walker(node, reads_walker, ctx);
}

/* Does any part of query q read column attno (or the whole row) of its range table entry rti? */
static bool
column_read(Query *q, int rti, AttrNumber attno)
{
	ReadsColumn ctx = {q, rti, attno, 0};

	return query_tree_walker(q, reads_walker, &ctx, QTW_IGNORE_JOINALIASES);
}

/* The constant '{"explain": false}', made once per backend. */
static Datum
no_explanation(void)
{
	static Datum value = (Datum) 0;

	if (value == (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		value = DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"explain\": false}"));
		MemoryContextSwitchTo(old);
	}
	return value;
}

/*
 * A constant options object with "explain": false merged in (jsonb_concat),
 * in the caller's context; the last one (at most KAIREON_KEPT_MAX bytes) kept
 * per backend in a util/kept.h slot, since a client tends to send the same
 * options with every call.
 */
static Datum
explain_merged(Jsonb *opts)
{
	static KKept last;
	const Jsonb *kept = kaireon_kept_get(&last, opts, VARSIZE(opts));
	Datum		merged;

	if (kept != NULL)
		return datumCopy(PointerGetDatum(kept), false, -1);
	/* (copied: jsonb_concat may return its second argument, the backend's constant) */
	merged = datumCopy(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(opts), no_explanation()), false, -1);
	kaireon_kept_put(&last, opts, VARSIZE(opts), DatumGetPointer(merged), VARSIZE(DatumGetPointer(merged)));
	return merged;
}

/*
 * May every role execute the built-in functions unexplained_param's CASE calls?
 * (Where a database revoked one from PUBLIC, a caller could lack it: the
 * parameter is then left alone, whoever plans or later runs the plan.)
 */
static bool
case_functions_public(void)
{
	if (!case_hashes_known)
	{
		for (int i = 0; i < (int) lengthof(case_functions); i++)
			case_function_hash[i] = GetSysCacheHashValue1(PROCOID, ObjectIdGetDatum(case_functions[i]));
		case_hashes_known = true;
	}
	for (int i = 0; i < (int) lengthof(case_functions); i++)
		if (pg_proc_aclcheck(case_functions[i], ACL_ID_PUBLIC, ACL_EXECUTE) != ACLCHECK_OK)
			return false;
	return true;
}

/*
 * The options parameter p with "explain": false where it is an object without
 * "explain", else p itself: CASE WHEN jsonb_typeof(p) = 'object' AND NOT p ?
 * 'explain' THEN p || '{"explain": false}' ELSE p END.  A parameter has no side
 * effect, so it may be read three times; NULL, a non-object and an explicit
 * explain reach recommend unchanged (its errors are the same).
 */
static Expr *
unexplained_param(Param *p)
{
	Expr	   *is_object = (Expr *) makeFuncExpr(F_TEXTEQ, BOOLOID,
												  list_make2(makeFuncExpr(F_JSONB_TYPEOF, TEXTOID, list_make1(copyObject(p)),
																		  DEFAULT_COLLATION_OID, InvalidOid,
																		  COERCE_EXPLICIT_CALL),
															 makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
																	   CStringGetTextDatum("object"), false, false)),
												  InvalidOid, DEFAULT_COLLATION_OID, COERCE_EXPLICIT_CALL);
	Expr	   *has_explain = (Expr *) makeFuncExpr(F_JSONB_EXISTS, BOOLOID,
													list_make2(copyObject(p),
															   makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
																		 CStringGetTextDatum("explain"), false, false)),
													InvalidOid, DEFAULT_COLLATION_OID, COERCE_EXPLICIT_CALL);
	CaseWhen   *when = makeNode(CaseWhen);
	CaseExpr   *c = makeNode(CaseExpr);

	when->expr = makeBoolExpr(AND_EXPR, list_make2(is_object, makeBoolExpr(NOT_EXPR, list_make1(has_explain), -1)), -1);
	when->result = (Expr *) makeFuncExpr(F_JSONB_CONCAT, JSONBOID,
										 list_make2(copyObject(p),
													makeConst(JSONBOID, -1, InvalidOid, -1,
															  datumCopy(no_explanation(), false, -1), false, false)),
										 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	when->location = -1;
	c->casetype = JSONBOID;
	c->casecollid = InvalidOid;
	c->arg = NULL;
	c->args = list_make1(when);
	c->defresult = (Expr *) p;
	c->location = -1;
	return (Expr *) c;
}

/*
 * Mark a call of recommend with options.explain false where its options allow
 * it (protocol step 4): a constant object without "explain" gets the member, a
 * parameter is wrapped (unexplained_param).  Options left out were filled
 * with recommend's default by complete_arguments (else they are left out).
 */
static void
mark_unexplained(FuncExpr *call)
{
	ListCell   *lc;
	int			pos = 0;

	foreach(lc, call->args)
	{
		Node	   *arg = lfirst(lc);
		Node	  **slot = (Node **) &lfirst(lc);
		Const	   *c;
		Jsonb	   *opts;
		JsonbValue	key;

		if (IsA(arg, NamedArgExpr))
		{
			if (((NamedArgExpr *) arg)->argnumber != RECOMMEND_OPTIONS_ARG)
				continue;
			slot = (Node **) &((NamedArgExpr *) arg)->arg;
		}
		else if (pos++ != RECOMMEND_OPTIONS_ARG)
			continue;
		/* a parameter: the same test at each execution (or once, where the planner knows its value) */
		if (IsA(*slot, Param) && ((Param *) *slot)->paramtype == JSONBOID)
		{
			if (case_functions_public())
				*slot = (Node *) unexplained_param((Param *) *slot);
			return;
		}
		/* else only a constant object without "explain" */
		c = (Const *) *slot;
		if (!IsA(c, Const) || c->consttype != JSONBOID || c->constisnull)
			return;
		opts = DatumGetJsonbP(c->constvalue);
		if (!JB_ROOT_IS_OBJECT(opts))
			return;
		key.type = jbvString;
		key.val.string.val = "explain";
		key.val.string.len = strlen("explain");
		if (findJsonbValueFromContainer(&opts->root, JB_FOBJECT, &key) != NULL)
			return;
		*slot = (Node *) makeConst(JSONBOID, -1, InvalidOid, -1, explain_merged(opts), false, false);
		return;
	}
	/*
	 * options left out: left alone (after complete_arguments only where
	 * recommend's defaults could not be read, so its own default applies)
	 */
}

/*
 * A call of recommend with its arguments in order (Arguments completed, at the
 * top): named arguments placed, the ones left out filled with copies of the
 * defaults; left as it is where an argument would have no value (then the
 * planner's own expansion reports it).
 */
static void
complete_arguments(FuncExpr *call)
{
	Node	   *argarray[RECOMMEND_NARGS] = {0};
	List	   *args = NIL;
	ListCell   *lc;
	int			pos = 0;

	foreach(lc, call->args)
	{
		Node	   *arg = lfirst(lc);

		if (IsA(arg, NamedArgExpr))
			pos = ((NamedArgExpr *) arg)->argnumber;
		if (pos < 0 || pos >= RECOMMEND_NARGS || argarray[pos] != NULL)
			return;
		argarray[pos] = IsA(arg, NamedArgExpr) ? (Node *) ((NamedArgExpr *) arg)->arg : arg;
		pos++;
	}
	pos = RECOMMEND_NARGS - recommend_ndefaults;
	foreach(lc, recommend_defaults)
	{
		if (argarray[pos] == NULL)
			argarray[pos] = copyObject(lfirst(lc));
		pos++;
	}
	for (pos = 0; pos < RECOMMEND_NARGS; pos++)
	{
		if (argarray[pos] == NULL)
			return;
		args = lappend(args, argarray[pos]);
	}
	call->args = args;
}

static bool mark_walker(Node *node, void *context);

/*
 * Mark the calls of recommend in q whose explanations q never reads (where
 * the setting is on) and complete every call's arguments, then do the same
 * in the queries in q.
 */
static void
mark_query(Query *q)
{
	ListCell   *lc;
	int			rti = 0;
	bool		nested = q->hasSubLinks || q->cteList != NIL;

	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		RangeTblFunction *rtfunc;
		AttrNumber	attno;
		Oid			fn;

		rti++;
		nested |= rte->rtekind == RTE_SUBQUERY;
		if (rte->rtekind != RTE_FUNCTION || list_length(rte->functions) != 1)
			continue;
		rtfunc = linitial(rte->functions);
		if (!IsA(rtfunc->funcexpr, FuncExpr))
			continue;
		fn = recommend_function(&attno);
		if (!OidIsValid(fn) || ((FuncExpr *) rtfunc->funcexpr)->funcid != fn)
			continue;
		/* completed first: left-out options are then the default's constant, which marking keeps */
		complete_arguments((FuncExpr *) rtfunc->funcexpr);
		if (unread_explanations && !column_read(q, rti, attno))
			mark_unexplained((FuncExpr *) rtfunc->funcexpr);
	}
	/* a query nests others only in a sublink, a CTE or a subquery in FROM: without any, no walk */
	if (nested)
		query_tree_walker(q, mark_walker, NULL, QTW_IGNORE_JOINALIASES);
}

/* Walker: mark_query for every query nested in the one walked. */
static bool
mark_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		mark_query((Query *) node);
		return false;
	}
	return expression_tree_walker(node, mark_walker, context);
}

/* Does q or a query nested in it have a range table function at all (the cheap test for every query)? */
static bool
has_function_rte(Query *q)
{
	ListCell   *lc;

	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_FUNCTION ||
			(rte->rtekind == RTE_SUBQUERY && has_function_rte(rte->subquery)))
			return true;
	}
	/* sublinks and CTEs: not looked into here, so a query with any goes the full way */
	return q->hasSubLinks || q->cteList != NIL;
}

/* planner_hook: mark the unread explanations and complete the arguments (protocol above), then plan as before. */
static PlannedStmt *
projection_planner(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	AttrNumber	attno;

	if (parse->commandType != CMD_UTILITY && has_function_rte(parse) &&
		OidIsValid(recommend_function(&attno)))
		mark_query(parse);
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/* Load-time initialisation: the setting, the planner hook, the pg_proc callback. */
void
kaireon_projection_init(void)
{
	DefineCustomBoolVariable("kaireon.unread_explanations",
							 "Build no explanations for a kaireon.recommend call whose query reads none.",
							 "Off: every call builds its explanations unless its options say explain false (docs/recommend.md).",
							 &unread_explanations, true, PGC_USERSET, 0, NULL, NULL, NULL);
	prev_planner_hook = planner_hook;
	planner_hook = projection_planner;
	CacheRegisterSyscacheCallback(PROCOID, projection_proc_cb, (Datum) 0);
	kaireon_register_relcache_callback(projection_relcache_cb, (Datum) 0);
}
