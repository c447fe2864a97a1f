/*
 * scoring/models/adaptive_internal.h
 *	  Private to the adaptive model family (scoring/models/adaptive.c,
 *	  adaptive_sketch.c, adaptive_offer.c): the compiled model's and the
 *	  sketches' types, and the functions one file of the family calls in another.
 *	  The protocol is at the top of adaptive.c, the sketch format at the top of
 *	  adaptive_sketch.c.
 */
#ifndef KAIREON_SCORING_MODELS_ADAPTIVE_INTERNAL_H
#define KAIREON_SCORING_MODELS_ADAPTIVE_INTERNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* The settings (config), with their defaults in adaptive_compile. */
typedef struct AdmConfig
{
	int			sketch_bins;	/* sketchBins: bins of a numeric sketch per shard row */
	int			max_symbols;	/* maxSymbols: values counted per symbolic predictor and row */
	double		min_positives;	/* minPositives: maturity */
	double		auc_threshold;	/* aucThreshold: a predictor is active above it */
	double		merge_chi2;		/* mergeChiSquare: ChiMerge's threshold */
	double		alpha;			/* alpha: Laplace smoothing of the bins */
	int			refresh_ms;		/* refreshMs: how old a backend's copy may get */
	bool		per_channel;	/* perChannel: one model per offer and channel */
} AdmConfig;

/* A declared predictor. */
typedef struct AdmPredictor
{
	char	   *name;
	int			feature;
	bool		symbolic;
} AdmPredictor;

/* One bin of a compiled predictor. */
typedef struct AdmBin
{
	double		pos;
	double		neg;
	double		lo;				/* log-odds contribution */
	double		lower;			/* numeric: the interval [lower, upper) */
	double		upper;
	int			nvalues;		/* symbolic: the values of the group */
	char	  **values;
} AdmBin;

/* A compiled predictor of one offer: its bins, the last one the missing bin. */
typedef struct AdmPredState
{
	int			nbins;			/* with the missing bin */
	AdmBin	   *bins;
	double		auc;
	bool		active;
} AdmPredState;

/* The compiled model of one offer. */
typedef struct AdmOffer
{
	char	   *scope_id;
	double		positives;
	double		negatives;
	bool		mature;
	AdmPredState *preds;
	int			ncal;			/* calibration: PAV blocks (centre, value) */
	double	   *cal_x;
	double	   *cal_y;
	double		cal_pos;
	double		cal_neg;
	/* as read: compiled on first use */
	bool		compiled;
	int			nrows;
	struct Section **rows;		/* each shard row's sketch sections */
	int		   *nsec;
} AdmOffer;

/* The compiled model: the definition, and this backend's copy of what it learned. */
typedef struct AdmModel
{
	AdmConfig	cfg;
	char	   *tenant_id;
	char	   *model_id;
	int			npred;
	AdmPredictor *preds;
	int			channel_feature;	/* perChannel: the feature decision.channel */
	/* this backend's copy of the learned state */
	MemoryContext state_cxt;
	bool		loaded;
	LocalTransactionId loaded_lxid;
	TimestampTz loaded_at;
	int			noffers;		/* sorted by scope_id */
	AdmOffer   *offers;
} AdmModel;

/* One bin of a sketch, or a run of bins while compiling. */
typedef struct SketchBin
{
	double		c;				/* centroid (numeric and score sketches) */
	double		pos;
	double		neg;
	double		cmin;			/* the smallest and largest centroid of a run */
	double		cmax;
	int			first;			/* symbolic: the values [first, last] of the sorted list */
	int			last;
} SketchBin;

/* ---- sketches (adaptive_sketch.c) ---- */

/* The upper limits of config's sketchBins and maxSymbols (adaptive_compile). */
#define ADM_MAX_SKETCH_BINS 200
#define ADM_MAX_SYMBOLS 1000
/*
 * The most entries a sketch section may hold when read: learning writes at most sketchBins
 * bins to a numeric or score section (a new bin beyond them is merged away at once) and at
 * most maxSymbols values to a symbolic one (no new value once full), so the limits above,
 * with this slack; more is refused (22023), not compiled (ChiMerge is quadratic).
 */
#define ADM_SECTION_SLACK 16

/* The longest symbolic value a sketch keeps (its length is stored in 16 bits); longer: missing. */
#define ADM_MAX_SYMBOL 1024
/* The kinds of a sketch section. */
#define SEC_NUMERIC 1
#define SEC_SYMBOLIC 2
#define SEC_SCORE 3

/* One symbolic value's counts. */
typedef struct SymCount
{
	char	   *value;
	double		pos;
	double		neg;
} SymCount;

/* One section of a sketch document, read. */
typedef struct Section
{
	int			kind;
	char	   *name;
	int			count;
	int			cap;
	SketchBin  *bins;			/* numeric, score */
	SymCount   *syms;			/* symbolic */
} Section;

/* read a sketch document into sections (each with room for extra more entries) */
extern int	kaireon_adaptive_sketch_parse(const char *data, size_t len, Section **out, int extra);
/* write sections as a sketch document (a bytea) */
extern bytea *kaireon_adaptive_sketch_write(const Section *s, int n);

/* ---- compiling an offer (adaptive_offer.c) ---- */

/* compile one offer from its shard rows' sketches (the counts are already in o) */
extern void kaireon_adaptive_compile_offer(const AdmModel *adm, AdmOffer *o, Section **rows,
										   const int *nsec, int nrows);

/*
 * ---- the order of a compiled bin's values: compile_symbolic's qsort sorts them by it
 * (adaptive_offer.c), value_bin's bsearch finds a value by it (adaptive.c, per candidate,
 * where bsearch inlines it: static inline keeps it so) ----
 */

/* Order symbol names for a deterministic pooling. */
static inline int
kaireon_adaptive_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

#endif							/* KAIREON_SCORING_MODELS_ADAPTIVE_INTERNAL_H */
