/*
 * models/bandit.c
 *	  thompson_bandit and epsilon_greedy: per-arm state in model_state, the
 *	  arm being the candidate offer id; respond's outcomes update it (learn).
 *
 *	  thompson_bandit: {"prior": {"alpha": 1, "beta": 1}, "arms": {"<arm>":
 *	  {"alpha": a, "beta": b}}}; the score is a draw from Beta(a, b) (an arm
 *	  without state uses the prior); a positive outcome adds 1 to alpha, a
 *	  negative one 1 to beta.
 *
 *	  epsilon_greedy: {"epsilon": 0.1, "initialValue": 0.5, "arms": {"<arm>":
 *	  {"pulls": n, "rewards": r}}}; with probability epsilon the score is a
 *	  uniform random number (exploration), otherwise the arm's mean reward
 *	  r / n (initialValue for an arm never pulled).  Every outcome adds a
 *	  pull, a positive one also a reward.
 */
#include "postgres.h"

#include <math.h>

#include "common/hashfn.h"
#include "utils/hsearch.h"

#include "scoring/models/model.h"

typedef struct ArmState
{
	char		arm[NAMEDATALEN * 2];	/* hash key; longer arm ids are truncated */
	double		a;				/* alpha, or pulls */
	double		b;				/* beta, or rewards */
} ArmState;

typedef struct Bandit
{
	bool		thompson;
	double		prior_a;
	double		prior_b;
	double		epsilon;
	double		initial;
	HTAB	   *arms;
} Bandit;

/* Compile the arms into a hash table in the current context. */
static void
bandit_compile_common(const ModelSource *src, ModelImpl *impl, bool thompson)
{
	const char *where = src->where;
	Bandit	   *bd = palloc0(sizeof(Bandit));
	json_t	   *arms,
			   *v;
	const char *arm;
	HASHCTL		ctl;
	static const char *const t_keys[] = {"prior", "arms", NULL};
	static const char *const e_keys[] = {"epsilon", "initialValue", "arms", NULL};

	bd->thompson = thompson;
	model_check_keys(where, src->state, "", thompson ? t_keys : e_keys);
	if (thompson)
	{
		json_t	   *prior = model_get(where, src->state, "", "prior", JSON_OBJECT, false);

		bd->prior_a = prior ? model_get_number(where, prior, "prior", "alpha", false, 1) : 1;
		bd->prior_b = prior ? model_get_number(where, prior, "prior", "beta", false, 1) : 1;
		if (!(bd->prior_a > 0) || !(bd->prior_b > 0))
			model_error(where, "prior", "alpha and beta must be above 0");
	}
	else
	{
		bd->epsilon = model_get_number(where, src->state, "", "epsilon", false, 0.1);
		bd->initial = model_get_number(where, src->state, "", "initialValue", false, 0.5);
		if (bd->epsilon < 0 || bd->epsilon > 1)
			model_error(where, "", "field \"epsilon\" must be between 0 and 1, not %g", bd->epsilon);
		if (bd->initial < 0 || bd->initial > 1)
			model_error(where, "", "field \"initialValue\" must be between 0 and 1, not %g", bd->initial);
	}
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN * 2;
	ctl.entrysize = sizeof(ArmState);
	ctl.hcxt = CurrentMemoryContext;
	bd->arms = hash_create("kaireon bandit arms", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	arms = model_get(where, src->state, "", "arms", JSON_OBJECT, false);
	if (arms)
		json_object_foreach(arms, arm, v)
	{
		char		path[300];
		char		key[NAMEDATALEN * 2];
		ArmState   *st;

		snprintf(path, sizeof(path), "arms.\"%.200s\"", arm);
		if (!json_is_object(v))
			model_error(where, path, "must be an object");
		memset(key, 0, sizeof(key));
		strlcpy(key, arm, sizeof(key));
		st = hash_search(bd->arms, key, HASH_ENTER, NULL);
		if (thompson)
		{
			st->a = model_get_number(where, v, path, "alpha", true, 1);
			st->b = model_get_number(where, v, path, "beta", true, 1);
			if (!(st->a > 0) || !(st->b > 0))
				model_error(where, path, "alpha and beta must be above 0");
		}
		else
		{
			st->a = model_get_number(where, v, path, "pulls", true, 0);
			st->b = model_get_number(where, v, path, "rewards", true, 0);
			if (st->a < 0 || st->b < 0 || st->b > st->a)
				model_error(where, path, "needs 0 <= rewards <= pulls");
		}
	}
	impl->data = bd;
}

/* Compile a thompson_bandit model_state. */
static void
thompson_compile(const ModelSource *src, ModelImpl *impl)
{
	bandit_compile_common(src, impl, true);
}

/* Compile an epsilon_greedy model_state. */
static void
epsilon_compile(const ModelSource *src, ModelImpl *impl)
{
	bandit_compile_common(src, impl, false);
}

/* The state of an arm, or NULL. */
static ArmState *
find_arm(const Bandit *bd, const char *arm)
{
	char		key[NAMEDATALEN * 2];

	if (arm == NULL)
		return NULL;
	memset(key, 0, sizeof(key));
	strlcpy(key, arm, sizeof(key));
	return hash_search(bd->arms, key, HASH_FIND, NULL);
}

/* A standard normal draw (Box-Muller). */
static double
normal_draw(void)
{
	double		u1 = 1.0 - model_random();	/* (0, 1] */
	double		u2 = model_random();

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* A Gamma(shape, 1) draw (Marsaglia and Tsang; boosted for shape < 1). */
static double
gamma_draw(double shape)
{
	double		d,
				c;

	if (shape < 1.0)
	{
		double		u = 1.0 - model_random();

		return gamma_draw(shape + 1.0) * pow(u, 1.0 / shape);
	}
	d = shape - 1.0 / 3.0;
	c = 1.0 / sqrt(9.0 * d);
	for (;;)
	{
		double		x = normal_draw();
		double		v = 1.0 + c * x;
		double		u;

		if (v <= 0)
			continue;
		v = v * v * v;
		u = 1.0 - model_random();
		if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
			return d * v;
	}
}

/* A Beta(a, b) draw. */
static double
beta_draw(double a, double b)
{
	double		x = gamma_draw(a);
	double		y = gamma_draw(b);

	return x + y > 0 ? x / (x + y) : 0.5;
}

/* The arm's parameters (prior for a new arm). */
static void
arm_params(const Bandit *bd, const char *arm, double *a, double *b, bool *known)
{
	ArmState   *st = find_arm(bd, arm);

	*known = st != NULL;
	if (bd->thompson)
	{
		*a = st ? st->a : bd->prior_a;
		*b = st ? st->b : bd->prior_b;
	}
	else
	{
		*a = st ? st->a : 0;
		*b = st ? st->b : 0;
	}
}

/* Score: a posterior draw (Thompson) or the greedy mean with epsilon exploration. */
static double
bandit_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const Bandit *bd = impl->data;
	double		a,
				b;
	bool		known;

	arm_params(bd, arm, &a, &b, &known);
	if (bd->thompson)
		return beta_draw(a, b);
	if (bd->epsilon > 0 && model_random() < bd->epsilon)
		return model_random();
	return a > 0 ? b / a : bd->initial;
}

/* Explanation: the arm's state and the score drawn from it. */
static json_t *
bandit_explain(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const Bandit *bd = impl->data;
	json_t	   *out = json_object();
	double		a,
				b;
	bool		known;

	arm_params(bd, arm, &a, &b, &known);
	json_object_set_new(out, "arm", arm ? json_string(arm) : json_null());
	json_object_set_new(out, "knownArm", json_boolean(known));
	if (bd->thompson)
	{
		json_object_set_new(out, "alpha", json_real(a));
		json_object_set_new(out, "beta", json_real(b));
		json_object_set_new(out, "mean", json_real(a / (a + b)));
		json_object_set_new(out, "score", json_real(beta_draw(a, b)));
	}
	else
	{
		bool		explore = bd->epsilon > 0 && model_random() < bd->epsilon;
		double		mean = a > 0 ? b / a : bd->initial;

		json_object_set_new(out, "pulls", json_real(a));
		json_object_set_new(out, "rewards", json_real(b));
		json_object_set_new(out, "mean", json_real(mean));
		json_object_set_new(out, "epsilon", json_real(bd->epsilon));
		json_object_set_new(out, "explored", json_boolean(explore));
		json_object_set_new(out, "score", json_real(explore ? model_random() : mean));
	}
	return out;
}

/* Learn one outcome for an arm: Beta counts, or pulls and rewards. */
static void
bandit_learn(json_t *state, json_t *predictors, const KaireonValue *values,
			 const ModelImpl *impl, const char *arm, bool positive)
{
	const Bandit *bd = impl->data;
	json_t	   *arms = json_object_get(state, "arms");
	json_t	   *st;

	if (arm == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a bandit model learns per arm, and no arm (offer id) was given"),
				 errhint("Pass the offer id of the decision the outcome is for.")));
	if (arms == NULL)
	{
		arms = json_object();
		json_object_set_new(state, "arms", arms);
	}
	st = json_object_get(arms, arm);
	if (st == NULL)
	{
		st = json_object();
		if (bd->thompson)
		{
			json_object_set_new(st, "alpha", json_real(bd->prior_a));
			json_object_set_new(st, "beta", json_real(bd->prior_b));
		}
		else
		{
			json_object_set_new(st, "pulls", json_real(0));
			json_object_set_new(st, "rewards", json_real(0));
		}
		json_object_set_new(arms, arm, st);
	}
	if (bd->thompson)
	{
		const char *k = positive ? "alpha" : "beta";

		json_object_set_new(st, k, json_real(json_number_value(json_object_get(st, k)) + 1));
	}
	else
	{
		json_object_set_new(st, "pulls", json_real(json_number_value(json_object_get(st, "pulls")) + 1));
		if (positive)
			json_object_set_new(st, "rewards",
								json_real(json_number_value(json_object_get(st, "rewards")) + 1));
	}
}

const ModelOps kaireon_thompson_ops = {
	.type_name = "thompson_bandit",
	.compile = thompson_compile,
	.score = bandit_score,
	.explain = bandit_explain,
	.learns_online = true,
	.per_arm = true,
	.learn = bandit_learn,
};

const ModelOps kaireon_epsilon_ops = {
	.type_name = "epsilon_greedy",
	.compile = epsilon_compile,
	.score = bandit_score,
	.explain = bandit_explain,
	.learns_online = true,
	.per_arm = true,
	.learn = bandit_learn,
};
