/*
 * journey.c
 *	  Validates a journey's definition when it is written (the BEFORE INSERT OR
 *	  UPDATE trigger of kaireon.journeys), so that a journey that cannot run is
 *	  refused with SQLSTATE 22023 naming the journey and the step, never found
 *	  out by the engine.  docs/journeys.md documents the format; keep the two in
 *	  step.
 *
 * The checks, in order:
 *   1. the root: steps (1 to JOURNEY_MAX_STEPS), allowReentry, exitOnConversion;
 *   2. each step: a unique id, a known type, that type's fields (unknown
 *      fields refused, as everywhere in kaireon's configuration), durations
 *      positive and finite, a wait with exactly one of duration / until /
 *      event, a split's conditions each of exactly one kind;
 *   3. the graph: exactly one entry_trigger; every step named by a next field
 *      exists; every step is reachable from the entry; every step reaches an
 *      exit; every cycle passes through a wait (else an enrolment would loop
 *      without end in one run of the engine).
 * An empty definition ({}) is a journey still being drafted: accepted here,
 * refused by kaireon.publish_journey.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "catalog/pg_collation.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "util/subxact.h"
#include "config/validate.h"

PG_FUNCTION_INFO_V1(kaireon_validate_journey);

#define JOURNEY_MAX_STEPS 200
#define JOURNEY_MAX_WAIT_DAYS 3650.0
/* An ISO 8601 instant with its UTC offset (the time zone of the session never matters). */
#define ISO_INSTANT "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"

static const char *const step_types[] = {
	"entry_trigger", "wait", "nba_decision", "condition_split", "channel_action", "exit", NULL
};
static const char *const split_operators[] = {"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", NULL};

static const FieldSpec root_fields[] = {
	{"steps", JT_ARRAY, true, NULL, JT_OBJECT, 1, JOURNEY_MAX_STEPS},
	{"allowReentry", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"exitOnConversion", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"description", JT_STRING, false, NULL, 0, 0, 2000},
	FIELD_END
};

#define STEP_COMMON \
	{"id", JT_STRING, true, NULL, 0, 1, 100}, \
	{"type", JT_STRING, true, step_types, 0, NO_BOUND, NO_BOUND}, \
	{"name", JT_STRING, false, NULL, 0, 0, 200}

static const FieldSpec entry_fields[] = {
	STEP_COMMON,
	{"next", JT_STRING, true, NULL, 0, 1, 100},
	{"eventType", JT_STRING, false, NULL, 0, 1, 100},
	{"segmentId", JT_STRING, false, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec wait_fields[] = {
	STEP_COMMON,
	{"next", JT_STRING, true, NULL, 0, 1, 100},
	{"duration", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"until", JT_STRING, false, NULL, 0, 1, 100},
	{"event", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"timeout", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"timeoutNext", JT_STRING, false, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec decision_fields[] = {
	STEP_COMMON,
	{"channelId", JT_STRING, true, NULL, 0, 1, 100},
	{"placementId", JT_STRING, false, NULL, 0, 1, 100},
	{"flowKey", JT_STRING, false, NULL, 0, 1, 100},
	{"onOffer", JT_STRING, true, NULL, 0, 1, 100},
	{"onNoOffer", JT_STRING, true, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec split_fields[] = {
	STEP_COMMON,
	{"branches", JT_ARRAY, true, NULL, JT_OBJECT, 1, 20},
	{"otherwise", JT_STRING, true, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec action_fields[] = {
	STEP_COMMON,
	{"channelId", JT_STRING, true, NULL, 0, 1, 100},
	{"offerId", JT_STRING, false, NULL, 0, 1, 100},
	{"creativeId", JT_STRING, false, NULL, 0, 1, 100},
	{"template", JT_STRING, false, NULL, 0, 1, 10000},
	{"next", JT_STRING, true, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec exit_fields[] = {
	STEP_COMMON,
	{"reason", JT_STRING, false, NULL, 0, 1, 200},
	FIELD_END
};
static const FieldSpec duration_fields[] = {
	{"days", JT_NUMBER, false, NULL, 0, 0, JOURNEY_MAX_WAIT_DAYS},
	{"hours", JT_NUMBER, false, NULL, 0, 0, JOURNEY_MAX_WAIT_DAYS * 24},
	{"minutes", JT_NUMBER, false, NULL, 0, 0, JOURNEY_MAX_WAIT_DAYS * 1440},
	{"seconds", JT_NUMBER, false, NULL, 0, 0, JOURNEY_MAX_WAIT_DAYS * 86400},
	FIELD_END
};
static const FieldSpec event_fields[] = {
	{"eventType", JT_STRING, true, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec branch_fields[] = {
	{"when", JT_OBJECT, true, NULL, 0, NO_BOUND, NO_BOUND},
	{"next", JT_STRING, true, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec when_fields[] = {
	{"segmentId", JT_STRING, false, NULL, 0, 1, 100},
	{"attribute", JT_STRING, false, NULL, 0, 1, 100},
	{"operator", JT_STRING, false, split_operators, 0, NO_BOUND, NO_BOUND},
	{"value", JT_SCALAR | JT_ARRAY, false, NULL, JT_SCALAR, 0, 1000},
	{"outcome", JT_STRING, false, NULL, 0, 1, 100},
	{"withinDays", JT_NUMBER, false, NULL, 0, 0, JOURNEY_MAX_WAIT_DAYS},
	{"experimentId", JT_STRING, false, NULL, 0, 1, 100},
	{"arm", JT_STRING, false, NULL, 0, 1, 100},
	FIELD_END
};

/* A step as the graph checks see it. */
typedef struct JStep
{
	const char *id;
	const char *type;
	bool		takes_time;		/* a wait that always lasts: a duration, or an event with its timeout */
	int			nnext;
	const char *next[22];		/* step ids this step can go to */
	const char *next_field[22]; /* the field naming each */
	int			target[22];		/* their positions */
} JStep;

/* A context naming the journey and, when set, the step and the sub-object. */
static ValidateCtx
step_ctx(const char *journey, const char *step, const char *sub)
{
	ValidateCtx ctx = {0};

	ctx.where = step == NULL ? psprintf("journeys.definition of journey \"%s\"", journey)
		: psprintf("journeys.definition of journey \"%s\", step \"%s\"%s%s", journey, step,
				   sub ? " " : "", sub ? sub : "");
	ctx.doc = "docs/journeys.md";
	return ctx;
}

/* A duration object: known fields, finite, in total more than 0 and at most the longest wait. */
static void
check_duration(const char *journey, const char *step, const char *field, json_t *d)
{
	ValidateCtx ctx = step_ctx(journey, step, psprintf("(%s)", field));
	double		total = 0;

	kaireon_check_fields(&ctx, d, duration_fields);
	total = kj_num(d, "days", 0) * 86400 + kj_num(d, "hours", 0) * 3600 +
		kj_num(d, "minutes", 0) * 60 + kj_num(d, "seconds", 0);
	if (!(total > 0) || total > JOURNEY_MAX_WAIT_DAYS * 86400)
		kaireon_config_error(&ctx, field,
							 psprintf("must last more than 0 seconds and at most %g days", JOURNEY_MAX_WAIT_DAYS));
}

/* Parse the timestamp text of arg with timestamptz_in (run in a subtransaction). */
static void
parse_timestamp_step(void *arg)
{
	(void) DirectFunctionCall3(timestamptz_in, CStringGetDatum((const char *) arg),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/* A split's condition: exactly one kind, with the fields that kind needs. */
static void
check_when(const char *journey, const char *step, size_t b, json_t *when)
{
	ValidateCtx ctx = step_ctx(journey, step, psprintf("(branches[%zu].when)", b));
	int			kinds = (json_object_get(when, "segmentId") != NULL) +
		(json_object_get(when, "attribute") != NULL) +
		(json_object_get(when, "outcome") != NULL) +
		(json_object_get(when, "experimentId") != NULL);

	kaireon_check_fields(&ctx, when, when_fields);
	if (kinds != 1)
		kaireon_config_error(&ctx, "segmentId/attribute/outcome/experimentId",
							 "must be given exactly once (one kind of condition per branch)");
	if (json_object_get(when, "attribute") != NULL &&
		(json_object_get(when, "operator") == NULL || json_object_get(when, "value") == NULL))
		kaireon_config_error(&ctx, "attribute", "needs \"operator\" and \"value\"");
	if (json_object_get(when, "experimentId") != NULL && json_object_get(when, "arm") == NULL)
		kaireon_config_error(&ctx, "experimentId", "needs \"arm\"");
	if (json_object_get(when, "withinDays") != NULL && json_object_get(when, "outcome") == NULL)
		kaireon_config_error(&ctx, "withinDays", "applies to an \"outcome\" condition only");
	if (json_object_get(when, "operator") != NULL && json_object_get(when, "attribute") == NULL)
		kaireon_config_error(&ctx, "operator", "applies to an \"attribute\" condition only");
	if (json_object_get(when, "value") != NULL && json_object_get(when, "attribute") == NULL)
		kaireon_config_error(&ctx, "value", "applies to an \"attribute\" condition only");
	if (json_object_get(when, "arm") != NULL && json_object_get(when, "experimentId") == NULL)
		kaireon_config_error(&ctx, "arm", "applies to an \"experimentId\" condition only");
	if (json_is_array(json_object_get(when, "value")) !=
		(kj_str(when, "operator") != NULL &&
		 (strcmp(kj_str(when, "operator"), "in") == 0 || strcmp(kj_str(when, "operator"), "not_in") == 0)))
		kaireon_config_error(&ctx, "value", "must be an array exactly when the operator is in or not_in");
}

/* Record a next field of a step. */
static void
add_next(JStep *s, const char *field, const char *id)
{
	if (id == NULL)
		return;
	Assert(s->nnext < lengthof(s->next));
	s->next_field[s->nnext] = field;
	s->next[s->nnext++] = id;
}

/* Check one step's fields; fill s with its id, type and next steps. */
static void
check_step(const char *journey, size_t i, json_t *step, JStep *s)
{
	ValidateCtx ctx;
	const char *type;

	s->id = kj_str(step, "id");
	ctx = step_ctx(journey, s->id ? s->id : psprintf("steps[%zu]", i), NULL);
	if (s->id == NULL)
		kaireon_config_error(&ctx, "id", json_object_get(step, "id") ? "must be a string" : "is required (a string naming the step)");
	type = kj_str(step, "type");
	if (type == NULL)
		kaireon_config_error(&ctx, "type", json_object_get(step, "type") ? "must be a string" : "is required");
	s->type = type;
	if (strcmp(type, "entry_trigger") == 0)
		kaireon_check_fields(&ctx, step, entry_fields);
	else if (strcmp(type, "wait") == 0)
	{
		int			kinds;

		kaireon_check_fields(&ctx, step, wait_fields);
		s->takes_time = json_object_get(step, "duration") != NULL || json_object_get(step, "event") != NULL;
		kinds = (json_object_get(step, "duration") != NULL) + (json_object_get(step, "until") != NULL) +
			(json_object_get(step, "event") != NULL);
		if (kinds != 1)
			kaireon_config_error(&ctx, "duration/until/event", "must be given exactly once (a wait needs one of them)");
		if (json_object_get(step, "duration") != NULL)
			check_duration(journey, s->id, "duration", json_object_get(step, "duration"));
		if (kj_str(step, "until") != NULL)
		{
			const char *until = kj_str(step, "until");
			ErrorData  *edata;

			/* a fixed instant: no special words (now, tomorrow, infinity), an explicit offset */
			if (!DatumGetBool(DirectFunctionCall2Coll(textregexeq, C_COLLATION_OID, CStringGetTextDatum(until),
													  CStringGetTextDatum(ISO_INSTANT))))
				kaireon_config_error(&ctx, "until",
									 psprintf("must be an ISO 8601 time with a UTC offset (such as 2026-12-24T09:00:00Z), not \"%s\"",
											  until));
			edata = ksubxact_run(parse_timestamp_step, (void *) until);
			if (edata != NULL)
				kaireon_config_error(&ctx, "until", psprintf("is not a timestamp: %s", edata->message));
		}
		if (json_object_get(step, "event") != NULL)
		{
			ValidateCtx ectx = step_ctx(journey, s->id, "(event)");

			kaireon_check_fields(&ectx, json_object_get(step, "event"), event_fields);
			if (json_object_get(step, "timeout") == NULL || kj_str(step, "timeoutNext") == NULL)
				kaireon_config_error(&ctx, "event", "needs \"timeout\" and \"timeoutNext\" (where to go when it does not come)");
			check_duration(journey, s->id, "timeout", json_object_get(step, "timeout"));
		}
		else if (json_object_get(step, "timeout") != NULL || json_object_get(step, "timeoutNext") != NULL)
			kaireon_config_error(&ctx, "timeout", "applies to a wait for an event only");
		add_next(s, "timeoutNext", kj_str(step, "timeoutNext"));
	}
	else if (strcmp(type, "nba_decision") == 0)
	{
		kaireon_check_fields(&ctx, step, decision_fields);
		add_next(s, "onOffer", kj_str(step, "onOffer"));
		add_next(s, "onNoOffer", kj_str(step, "onNoOffer"));
	}
	else if (strcmp(type, "condition_split") == 0)
	{
		json_t	   *branches = json_object_get(step, "branches");
		json_t	   *b;
		size_t		k;

		kaireon_check_fields(&ctx, step, split_fields);
		json_array_foreach(branches, k, b)
		{
			ValidateCtx bctx = step_ctx(journey, s->id, psprintf("(branches[%zu])", k));

			kaireon_check_fields(&bctx, b, branch_fields);
			check_when(journey, s->id, k, json_object_get(b, "when"));
			add_next(s, psprintf("branches[%zu].next", k), kj_str(b, "next"));
		}
		add_next(s, "otherwise", kj_str(step, "otherwise"));
	}
	else if (strcmp(type, "channel_action") == 0)
		kaireon_check_fields(&ctx, step, action_fields);
	else if (strcmp(type, "exit") == 0)
		kaireon_check_fields(&ctx, step, exit_fields);
	else
		kaireon_check_fields(&ctx, step, entry_fields); /* reports the unknown type */
	add_next(s, "next", kj_str(step, "next"));
}

/* Report a graph error naming the journey and the step. */
static void
graph_error(const char *journey, const char *step, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid journeys.definition of journey \"%s\": step \"%s\" %s", journey, step, problem),
			 errhint("See docs/journeys.md: every step is reachable from the entry_trigger, reaches an exit, "
					 "and every loop passes through a wait.")));
}

/* Depth-first search for a cycle of steps that avoids waits; returns a step on it or -1. */
static int
instant_cycle(JStep *steps, int n, int at, char *state)
{
	state[at] = 1;
	if (!steps[at].takes_time)
		for (int e = 0; e < steps[at].nnext; e++)
		{
			int			t = steps[at].target[e];

			if (state[t] == 1)
				return t;
			if (state[t] == 0)
			{
				int			c = instant_cycle(steps, n, t, state);

				if (c >= 0)
					return c;
			}
		}
	state[at] = 2;
	return -1;
}

/*
 * Validate a journey definition (see the file's header).  Steps: the root's
 * fields; every step's fields and next steps; the targets resolved; one
 * entry; reachability forwards from the entry and backwards from the exits;
 * cycles without a wait.
 */
void
kaireon_validate_journey_definition(const char *journey, json_t *def)
{
	ValidateCtx ctx = step_ctx(journey, NULL, NULL);
	json_t	   *steps_json;
	json_t	   *step;
	size_t		i;
	int			n,
				entry = -1;
	JStep	   *steps;
	bool	   *seen;
	bool		changed;
	char	   *state;

	if (json_object_size(def) == 0)
		return;					/* a draft without steps yet */
	kaireon_check_fields(&ctx, def, root_fields);
	steps_json = json_object_get(def, "steps");
	n = (int) json_array_size(steps_json);
	steps = palloc0(sizeof(JStep) * n);
	json_array_foreach(steps_json, i, step)
	{
		check_step(journey, i, step, &steps[i]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(steps[j].id, steps[i].id) == 0)
				graph_error(journey, steps[i].id, "is defined twice (step ids are unique)");
		if (strcmp(steps[i].type, "entry_trigger") == 0)
		{
			if (entry >= 0)
				graph_error(journey, steps[i].id, psprintf("is a second entry_trigger (the first is \"%s\")",
														   steps[entry].id));
			entry = (int) i;
		}
	}
	if (entry < 0)
		kaireon_config_error(&ctx, "steps", "needs one step of type entry_trigger");

	/* targets */
	for (int s = 0; s < n; s++)
		for (int e = 0; e < steps[s].nnext; e++)
		{
			steps[s].target[e] = -1;
			for (int t = 0; t < n; t++)
				if (strcmp(steps[t].id, steps[s].next[e]) == 0)
					steps[s].target[e] = t;
			if (steps[s].target[e] < 0)
				graph_error(journey, steps[s].id, psprintf("names step \"%s\" in \"%s\", which does not exist",
														   steps[s].next[e], steps[s].next_field[e]));
			if (steps[s].target[e] == entry)
				graph_error(journey, steps[s].id, psprintf("goes back to the entry_trigger \"%s\" in \"%s\"",
														   steps[entry].id, steps[s].next_field[e]));
		}

	/* reachable from the entry */
	seen = palloc0(sizeof(bool) * n);
	seen[entry] = true;
	do
	{
		changed = false;
		for (int s = 0; s < n; s++)
			if (seen[s])
				for (int e = 0; e < steps[s].nnext; e++)
					if (!seen[steps[s].target[e]])
						seen[steps[s].target[e]] = changed = true;
	} while (changed);
	for (int s = 0; s < n; s++)
		if (!seen[s])
			graph_error(journey, steps[s].id, "is unreachable from the entry_trigger");

	/* reaches an exit */
	memset(seen, 0, sizeof(bool) * n);
	do
	{
		changed = false;
		for (int s = 0; s < n; s++)
		{
			bool		reaches = strcmp(steps[s].type, "exit") == 0;

			for (int e = 0; e < steps[s].nnext && !reaches; e++)
				reaches = seen[steps[s].target[e]];
			if (reaches && !seen[s])
				seen[s] = changed = true;
		}
	} while (changed);
	for (int s = 0; s < n; s++)
		if (!seen[s])
			graph_error(journey, steps[s].id, "never reaches an exit step");

	/* loops pass through a wait */
	state = palloc0(n);
	for (int s = 0; s < n; s++)
		if (state[s] == 0)
		{
			int			c = instant_cycle(steps, n, s, state);

			if (c >= 0)
				graph_error(journey, steps[c].id,
							"is on a loop without a wait that takes time (a duration or an event; an \"until\" wait passes at once once its time is past)");
		}
}

/*
 * Check a journey's published versions: entry i holds version i + 1 and a
 * definition that validates (entries from first on: those an UPDATE added;
 * the append-only trigger keeps the others), and published_version is the
 * last version (NULL while there is none).  So a version can only come from
 * kaireon.publish_journey's shape, whoever writes the row.
 */
static void
check_published(const char *journey, json_t *versions, bool version_null, int32 version, size_t first)
{
	ValidateCtx ctx = {0};
	size_t		i;
	json_t	   *e;

	ctx.where = psprintf("journeys.published_versions of journey \"%s\"", journey);
	ctx.doc = "docs/journeys.md";
	if (!json_is_array(versions))
		kaireon_config_error(&ctx, "(root)", "must be an array");
	json_array_foreach(versions, i, e)
	{
		json_t	   *v = json_object_get(e, "version");
		json_t	   *def = json_object_get(e, "definition");

		if (!json_is_object(e) || !json_is_number(v) || json_number_value(v) != (double) (i + 1))
			kaireon_config_error(&ctx, psprintf("[%zu].version", i), psprintf("must be %zu (versions count from 1)", i + 1));
		if (i < first)
			continue;
		if (!json_is_object(def) || json_object_size(def) == 0)
			kaireon_config_error(&ctx, psprintf("[%zu].definition", i), "must be a journey definition with steps");
		kaireon_validate_journey_definition(psprintf("%s\" version \"%zu", journey, i + 1), def);
	}
	if (version_null ? json_array_size(versions) != 0 : (size_t) version != json_array_size(versions))
		kaireon_config_error(&ctx, "published_version",
							 psprintf("must be the last published version (%zu), as kaireon.publish_journey sets it",
									  json_array_size(versions)));
}

/*
 * BEFORE INSERT OR UPDATE trigger of kaireon.journeys: validates the
 * definition and the published versions.
 */
Datum
kaireon_validate_journey(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tuple = kaireon_trigger_new_row(fcinfo, "kaireon_validate_journey");
	char	   *id = kaireon_trigger_text(td, tuple, "id");
	json_t	   *def = kaireon_trigger_json(td, tuple, "definition", "journeys.definition");
	json_t	   *versions = kaireon_trigger_json(td, tuple, "published_versions", "journeys.published_versions");
	size_t		first = 0;
	bool		isnull;
	Datum		version;

	if (id == NULL)
		id = "(no id)";
	if (def != NULL)
		kaireon_validate_journey_definition(id, def);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		json_t	   *old = kaireon_trigger_json(td, td->tg_trigtuple, "published_versions", "journeys.published_versions");

		first = json_is_array(old) ? json_array_size(old) : 0;
	}
	version = heap_getattr(tuple, SPI_fnumber(RelationGetDescr(td->tg_relation), "published_version"),
						   RelationGetDescr(td->tg_relation), &isnull);
	if (versions != NULL)
		check_published(id, versions, isnull, isnull ? 0 : DatumGetInt32(version), first);
	return PointerGetDatum(tuple);
}
