/*
 * scoring/models/adaptive_sketch.c
 *	  adaptive: the sketch of a model_adaptations shard row (a bytea), read,
 *	  written, and updated for one outcome by kaireon_internal._adaptive_learn.
 *
 * A sketch document: "KAS1", uint32 number of sections, then each section:
 * uint8 kind (SEC_NUMERIC, SEC_SYMBOLIC, SEC_SCORE), uint8 0, uint16 name
 * length, uint32 entries, the name's bytes, then its entries: numeric and
 * score sketches as the centroid (a double) and positives and negatives
 * (uint32 each); symbolic counts as positives and negatives (uint32 each),
 * uint16 value length and the value's bytes.  Native byte order, read with memcpy.  An
 * observation (what one outcome adds) has the same format with one entry per
 * section (its counts unused).  A section holds at most what learning writes
 * (sketchBins bins, maxSymbols values: their limits ADM_MAX_SKETCH_BINS and
 * ADM_MAX_SYMBOLS, plus ADM_SECTION_SLACK); a longer one is refused when read.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"

#include "scoring/models/adaptive_internal.h"

PG_FUNCTION_INFO_V1(kaireon_adaptive_learn_sql);

#define SKETCH_MAGIC "KAS1"

/* Raise 22023 for a malformed sketch document. */
static void
bad_sketch(const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("model_adaptations.sketch is malformed: %s", problem),
			 errhint("It is written by kaireon's adaptive learning only (docs/models.md, adaptive).")));
}

/* Take n bytes from the cursor, or 22023 past the end. */
static const char *
take(const char **p, const char *end, size_t n)
{
	const char *at = *p;

	if ((size_t) (end - at) < n)
		bad_sketch("it ends early");
	*p = at + n;
	return at;
}

/* Take a count (uint32). */
static double
get_count(const char **p, const char *end)
{
	uint32		c;

	memcpy(&c, take(p, end, 4), 4);
	return (double) c;
}

/* Read a sketch document into sections (each with room for extra more entries). */
int
kaireon_adaptive_sketch_parse(const char *data, size_t len, Section **out, int extra)
{
	const char *p = data,
			   *end = data + len;
	uint32		n;
	Section    *s;

	if (len == 0)
	{
		*out = palloc0(sizeof(Section));
		return 0;
	}
	if (memcmp(take(&p, end, 4), SKETCH_MAGIC, 4) != 0)
		bad_sketch("it does not start with KAS1");
	memcpy(&n, take(&p, end, 4), 4);
	/* counts are checked against the bytes left before anything is allocated for them */
	if (n > 100000 || (uint64) n * 8 > (uint64) (end - p))
		bad_sketch("too many sections");
	s = palloc0(sizeof(Section) * (n + 1));
	for (uint32 i = 0; i < n; i++)
	{
		uint8		kind;
		uint16		nlen;
		uint32		count;

		kind = *(const uint8 *) take(&p, end, 2);
		memcpy(&nlen, take(&p, end, 2), 2);
		memcpy(&count, take(&p, end, 4), 4);
		if (kind < SEC_NUMERIC || kind > SEC_SCORE)
			bad_sketch(psprintf("a section has the unknown kind %u", kind));
		/* no more than learning writes (adaptive_internal.h): compiling is quadratic in them */
		if (count > (uint32) ((kind == SEC_SYMBOLIC ? ADM_MAX_SYMBOLS : ADM_MAX_SKETCH_BINS) + ADM_SECTION_SLACK))
			bad_sketch(psprintf("a %s section holds %u entries; learning writes at most %d (%s is at most %d)",
								kind == SEC_SYMBOLIC ? "symbolic" : "numeric", count,
								kind == SEC_SYMBOLIC ? ADM_MAX_SYMBOLS : ADM_MAX_SKETCH_BINS,
								kind == SEC_SYMBOLIC ? "maxSymbols" : "sketchBins",
								kind == SEC_SYMBOLIC ? ADM_MAX_SYMBOLS : ADM_MAX_SKETCH_BINS));
		if ((uint64) count * (kind == SEC_SYMBOLIC ? 10 : 16) > (uint64) (end - p))
			bad_sketch("a section claims more entries than its bytes hold");
		s[i].kind = kind;
		s[i].name = pnstrdup(take(&p, end, nlen), nlen);
		s[i].count = (int) count;
		s[i].cap = (int) count + extra;
		if (kind == SEC_SYMBOLIC)
		{
			s[i].syms = palloc(sizeof(SymCount) * (s[i].cap + 1));
			for (uint32 k = 0; k < count; k++)
			{
				uint16		vlen;

				s[i].syms[k].pos = get_count(&p, end);
				s[i].syms[k].neg = get_count(&p, end);
				memcpy(&vlen, take(&p, end, 2), 2);
				s[i].syms[k].value = pnstrdup(take(&p, end, vlen), vlen);
			}
		}
		else
		{
			s[i].bins = palloc0(sizeof(SketchBin) * (s[i].cap + 1));
			for (uint32 k = 0; k < count; k++)
			{
				memcpy(&s[i].bins[k].c, take(&p, end, 8), 8);
				if (!isfinite(s[i].bins[k].c))
					bad_sketch("a centroid is not a finite number");
				s[i].bins[k].pos = get_count(&p, end);
				s[i].bins[k].neg = get_count(&p, end);
			}
		}
	}
	if (p != end)
		bad_sketch("it has bytes after its last section");
	*out = s;
	return (int) n;
}

/* Append n bytes to buf. */
static void
put(StringInfo buf, const void *data, int n)
{
	appendBinaryStringInfo(buf, data, n);
}

/* Append a count as uint32 (22003 beyond its range). */
static void
put_count(StringInfo buf, double count)
{
	uint32		c;

	if (!(count >= 0 && count <= (double) PG_UINT32_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("an adaptive model's bin count of one shard row would exceed %u", PG_UINT32_MAX),
				 errhint("Delete the model's model_adaptations rows of the offer to start it again.")));
	c = (uint32) count;
	put(buf, &c, 4);
}

/* Write sections as a sketch document (a bytea). */
bytea *
kaireon_adaptive_sketch_write(const Section *s, int n)
{
	StringInfoData buf;
	uint32		nn = (uint32) n;
	bytea	   *out;

	initStringInfo(&buf);
	put(&buf, SKETCH_MAGIC, 4);
	put(&buf, &nn, 4);
	for (int i = 0; i < n; i++)
	{
		uint8		head[2] = {(uint8) s[i].kind, 0};
		uint16		nlen = (uint16) strlen(s[i].name);
		uint32		count = (uint32) s[i].count;

		put(&buf, head, 2);
		put(&buf, &nlen, 2);
		put(&buf, &count, 4);
		put(&buf, s[i].name, nlen);
		for (int k = 0; k < s[i].count; k++)
		{
			if (s[i].kind == SEC_SYMBOLIC)
			{
				uint16		vlen = (uint16) strlen(s[i].syms[k].value);

				put_count(&buf, s[i].syms[k].pos);
				put_count(&buf, s[i].syms[k].neg);
				put(&buf, &vlen, 2);
				put(&buf, s[i].syms[k].value, vlen);
			}
			else
			{
				put(&buf, &s[i].bins[k].c, 8);
				put_count(&buf, s[i].bins[k].pos);
				put_count(&buf, s[i].bins[k].neg);
			}
		}
	}
	out = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(out, VARHDRSZ + buf.len);
	memcpy(VARDATA(out), buf.data, buf.len);
	return out;
}

/*
 * Add value x with its class to a sketch of at most max bins (room for one
 * more): counted in the bin of that centroid, else a new bin; one bin too
 * many merges the adjacent pair with the fewest responses (ties: the
 * narrowest gap, then the leftmost) into their count-weighted mean.
 */
static int
sketch_add(SketchBin *b, int n, int max, double x, bool positive)
{
	int			at = 0;
	int			best = -1;
	double		best_count = 0,
				best_gap = 0;

	while (at < n && b[at].c < x)
		at++;
	if (at < n && b[at].c == x)
	{
		if (positive)
			b[at].pos++;
		else
			b[at].neg++;
		return n;
	}
	memmove(&b[at + 1], &b[at], sizeof(SketchBin) * (n - at));
	b[at].c = x;
	b[at].pos = positive ? 1 : 0;
	b[at].neg = positive ? 0 : 1;
	n++;
	while (n > max)
	{
		SketchBin  *l,
				   *r;
		double		wl,
					wr;

		best = -1;
		for (int i = 0; i + 1 < n; i++)
		{
			double		count = b[i].pos + b[i].neg + b[i + 1].pos + b[i + 1].neg;
			double		gap = b[i + 1].c - b[i].c;

			if (best < 0 || count < best_count || (count == best_count && gap < best_gap))
			{
				best = i;
				best_count = count;
				best_gap = gap;
			}
		}
		l = &b[best];
		r = &b[best + 1];
		wl = l->pos + l->neg;
		wr = r->pos + r->neg;
		/* the weighted mean of two neighbours lies between them: the order holds (weights
		 * applied first, so no product overflows) */
		l->c = l->c * (wl / (wl + wr)) + r->c * (wr / (wl + wr));
		l->pos += r->pos;
		l->neg += r->neg;
		memmove(&b[best + 1], &b[best + 2], sizeof(SketchBin) * (n - best - 2));
		n--;
	}
	return n;
}

/*
 * kaireon_internal._adaptive_learn(sketch bytea, observation bytea, positive
 * boolean, sketch_bins integer, max_symbols integer): a shard row's sketch
 * after one outcome.  Each section of the observation (one value) is added
 * to the row's section of that kind and name (created when new): numeric and
 * score values to a sketch of at most sketch_bins bins, symbolic values
 * counted (a new value only while the section has fewer than max_symbols).
 * A NULL sketch is empty.
 */
Datum
kaireon_adaptive_learn_sql(PG_FUNCTION_ARGS)
{
	bytea	   *state = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0);
	bytea	   *obs;
	bool		positive;
	int			max_bins,
				max_symbols,
				n,
				nobs;
	Section    *s,
			   *o;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	obs = PG_GETARG_BYTEA_PP(1);
	positive = PG_GETARG_BOOL(2);
	max_bins = PG_GETARG_INT32(3);
	max_symbols = PG_GETARG_INT32(4);
	/* config's ranges (adaptive_compile): a sketch written beyond them could not be read */
	if (max_bins < 2 || max_bins > ADM_MAX_SKETCH_BINS || max_symbols < 1 || max_symbols > ADM_MAX_SYMBOLS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("_adaptive_learn needs sketch_bins from 2 to %d and max_symbols from 1 to %d, not %d and %d",
						ADM_MAX_SKETCH_BINS, ADM_MAX_SYMBOLS, max_bins, max_symbols),
				 errhint("It is called by kaireon's adaptive models only (docs/models.md).")));
	nobs = kaireon_adaptive_sketch_parse(VARDATA_ANY(obs), VARSIZE_ANY_EXHDR(obs), &o, 0);
	n = state ? kaireon_adaptive_sketch_parse(VARDATA_ANY(state), VARSIZE_ANY_EXHDR(state), &s, 1) : 0;
	s = n > 0 ? repalloc(s, sizeof(Section) * (n + nobs + 1)) : palloc0(sizeof(Section) * (nobs + 1));
	for (int i = 0; i < nobs; i++)
	{
		Section    *t = NULL;

		if (o[i].count != 1)
			bad_sketch("an observation section holds one value");
		for (int k = 0; k < n && t == NULL; k++)
			if (s[k].kind == o[i].kind && strcmp(s[k].name, o[i].name) == 0)
				t = &s[k];
		if (t == NULL)
		{
			t = &s[n++];
			memset(t, 0, sizeof(Section));
			t->kind = o[i].kind;
			t->name = o[i].name;
			t->cap = 1;
			if (t->kind == SEC_SYMBOLIC)
				t->syms = palloc(sizeof(SymCount) * 2);
			else
				t->bins = palloc0(sizeof(SketchBin) * 2);
		}
		if (t->count >= t->cap)
		{
			/* room for one more entry (and the sketch's transient extra one) */
			t->cap = t->count + 1;
			if (t->kind == SEC_SYMBOLIC)
				t->syms = repalloc(t->syms, sizeof(SymCount) * (t->cap + 1));
			else
				t->bins = repalloc(t->bins, sizeof(SketchBin) * (t->cap + 1));
		}
		if (t->kind == SEC_SYMBOLIC)
		{
			int			k = 0;

			while (k < t->count && strcmp(t->syms[k].value, o[i].syms[0].value) != 0)
				k++;
			if (k == t->count)
			{
				if (t->count >= max_symbols)
					continue;	/* full: the value counts as missing */
				t->syms[k].value = o[i].syms[0].value;
				t->syms[k].pos = t->syms[k].neg = 0;
				t->count++;
			}
			if (positive)
				t->syms[k].pos++;
			else
				t->syms[k].neg++;
		}
		else
			t->count = sketch_add(t->bins, t->count, max_bins, o[i].bins[0].c, positive);
	}
	PG_RETURN_BYTEA_P(kaireon_adaptive_sketch_write(s, n));
}
