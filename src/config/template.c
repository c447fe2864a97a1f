/*
 * config/template.c
 *	  Creative content with personalization: a creative's content object
 *	  whose strings hold {{customer.<path>}} and {{offer.<path>}} placeholders.
 *
 * Protocol.  kaireon_template_compile runs once per creative when the
 * configuration is compiled (compile.c): it splits every string of the content
 * into literal text and placeholders, and keeps a subtree without any
 * placeholder as one constant.  kaireon_template_render runs only for a
 * returned decision (never per candidate): it copies the constants and fills
 * each placeholder from the customer's attributes (the customer data merged
 * with the request context) or the offer's fields (a column of the offer
 * row, else a key of its custom_fields), the way rules read them.
 *
 * Rules (docs/json-api.md "Creative content").  A placeholder is "{{", optional
 * spaces, customer. or offer., a dotted path of letters, digits and _, optional
 * spaces, "}}"; any other {{...}} stays as written.  A string value is inserted
 * as is (no HTML escaping: the answer is JSON, escaped by its encoding; a client
 * that renders HTML escapes it); an integral number without a fraction (120),
 * another number, a boolean, object or array as its compact JSON text.  A
 * missing (absent or null) value takes the creative's
 * personalization.defaults["customer.<path>"] when that is a string, else "".
 * Pure computation: no SPI, no catalog access.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "config/conditions.h"
#include "config/config.h"

/* One piece of a templated string: literal text or a placeholder. */
typedef struct KTplPart
{
	const char *text;			/* the literal text, or the placeholder's name ("customer.x") */
	bool		placeholder;
	bool		customer;		/* a customer.* placeholder (else offer.*) */
	const char *path;			/* the path after "customer." / "offer." */
	const char *dflt;			/* personalization.defaults of the placeholder, or NULL */
} KTplPart;

/* A compiled content value: a constant, an object, an array or a templated string. */
struct KTemplate
{
	enum
	{
		KTPL_CONST, KTPL_OBJECT, KTPL_ARRAY, KTPL_STRING
	}			kind;
	json_t	   *constant;		/* KTPL_CONST */
	int			n;				/* children (object, array) or parts (string) */
	const char **keys;			/* KTPL_OBJECT */
	struct KTemplate **children;
	KTplPart   *parts;			/* KTPL_STRING */
};

/* The length of a placeholder at s ("{{ customer.x }}"), 0 when s starts none; sets its parts. */
static size_t
placeholder_at(const char *s, bool *customer, char **path)
{
	const char *p = s + 2;
	const char *start;
	size_t		len;

	if (strncmp(s, "{{", 2) != 0)
		return 0;
	while (*p == ' ')
		p++;
	if (strncmp(p, "customer.", 9) == 0)
		*customer = true, p += 9;
	else if (strncmp(p, "offer.", 6) == 0)
		*customer = false, p += 6;
	else
		return 0;
	start = p;
	while (isalnum((unsigned char) *p) || *p == '_' || (*p == '.' && p > start && p[-1] != '.'))
		p++;
	len = p - start;
	if (len == 0 || start[len - 1] == '.')
		return 0;
	while (*p == ' ')
		p++;
	if (strncmp(p, "}}", 2) != 0)
		return 0;
	*path = pnstrdup(start, len);
	return (p + 2) - s;
}

/* Append a literal part (the array has room for it: repalloc does not zero the new parts). */
static void
add_literal(KTemplate *t, const char *text)
{
	KTplPart   *part = &t->parts[t->n++];

	memset(part, 0, sizeof(KTplPart));
	part->text = text;
}

/* Compile one string; NULL when it holds no placeholder. */
static KTemplate *
compile_string(const char *s, json_t *defaults)
{
	KTemplate  *t = NULL;
	const char *lit = s;
	const char *p = s;
	int			cap = 4;

	while ((p = strstr(p, "{{")) != NULL)
	{
		bool		customer;
		char	   *path;
		size_t		len = placeholder_at(p, &customer, &path);
		KTplPart   *part;
		json_t	   *d;

		if (len == 0)
		{
			p += 2;
			continue;
		}
		if (t == NULL)
		{
			t = palloc0(sizeof(KTemplate));
			t->kind = KTPL_STRING;
			t->parts = palloc0(sizeof(KTplPart) * cap);
		}
		if (t->n + 2 > cap)
			t->parts = repalloc(t->parts, sizeof(KTplPart) * (cap *= 2));
		if (p > lit)
			add_literal(t, pnstrdup(lit, p - lit));
		part = &t->parts[t->n++];
		memset(part, 0, sizeof(KTplPart));
		part->placeholder = true;
		part->customer = customer;
		part->path = path;
		part->text = psprintf("%s.%s", customer ? "customer" : "offer", path);
		d = json_object_get(defaults, part->text);
		part->dflt = json_is_string(d) ? pstrdup(json_string_value(d)) : NULL;
		p += len;
		lit = p;
	}
	if (t != NULL && *lit != '\0')
	{
		if (t->n + 1 > cap)
			t->parts = repalloc(t->parts, sizeof(KTplPart) * (cap + 1));
		add_literal(t, pstrdup(lit));
	}
	return t;
}

/* Compile a content value; NULL when nothing in it is templated (render it as the constant). */
static KTemplate *
compile_value(json_t *v, json_t *defaults)
{
	KTemplate  *t = NULL;
	bool		any = false;
	size_t		i;
	const char *key;
	json_t	   *e;

	if (json_is_string(v))
		return compile_string(json_string_value(v), defaults);
	if (!json_is_object(v) && !json_is_array(v))
		return NULL;
	t = palloc0(sizeof(KTemplate));
	t->kind = json_is_object(v) ? KTPL_OBJECT : KTPL_ARRAY;
	t->children = palloc0(sizeof(KTemplate *) * Max(json_is_object(v) ? json_object_size(v) : json_array_size(v), 1));
	t->keys = palloc0(sizeof(char *) * Max(json_is_object(v) ? json_object_size(v) : json_array_size(v), 1));
	if (json_is_object(v))
	{
		json_object_foreach(v, key, e)
		{
			t->keys[t->n] = pstrdup(key);
			t->children[t->n++] = compile_value(e, defaults);
		}
	}
	else
	{
		json_array_foreach(v, i, e)
			t->children[t->n++] = compile_value(e, defaults);
	}
	for (int k = 0; k < t->n; k++)
		if (t->children[k] != NULL)
			any = true;
	if (!any)
		return NULL;
	/* the untemplated members become constants */
	for (int k = 0; k < t->n; k++)
		if (t->children[k] == NULL)
		{
			KTemplate  *c = palloc0(sizeof(KTemplate));

			c->kind = KTPL_CONST;
			c->constant = json_is_object(v) ? json_object_get(v, t->keys[k]) : json_array_get(v, k);
			t->children[k] = c;
		}
	return t;
}

/*
 * Compile a creative's content (a JSON object) with its personalization
 * object (whose "defaults" fill missing values); NULL when the content holds
 * no placeholder.  Allocates in the current (the configuration's) context.
 */
KTemplate *
kaireon_template_compile(json_t *content, json_t *personalization)
{
	return compile_value(content, json_object_get(personalization, "defaults"));
}

/* Append a placeholder's value: a string as is, an integral number as such, else compact JSON; missing: the default. */
static void
append_value(StringInfo buf, const KTplPart *part, json_t *customer, const KOffer *offer)
{
	json_t	   *v = part->customer ? kaireon_path(customer, part->path) : kaireon_offer_attribute(offer, part->path);

	if (v == NULL)
	{
		if (part->dflt)
			appendStringInfoString(buf, part->dflt);
	}
	else if (json_is_string(v))
		appendBinaryStringInfo(buf, json_string_value(v), json_string_length(v));
	else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
			 fabs(json_real_value(v)) < 9007199254740992.0)
		appendStringInfo(buf, "%.0f", json_real_value(v));	/* 120, not 120.0 (JSON numbers are read as reals) */
	else
		appendStringInfoString(buf, kj_dump(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)));
}

/* Render a compiled content value (a new reference). */
static json_t *
render(const KTemplate *t, json_t *customer, const KOffer *offer)
{
	json_t	   *out;

	switch (t->kind)
	{
		case KTPL_CONST:
			return json_incref(t->constant);
		case KTPL_OBJECT:
			out = json_object();
			for (int k = 0; k < t->n; k++)
				json_object_set_new(out, t->keys[k], render(t->children[k], customer, offer));
			return out;
		case KTPL_ARRAY:
			out = json_array();
			for (int k = 0; k < t->n; k++)
				json_array_append_new(out, render(t->children[k], customer, offer));
			return out;
		case KTPL_STRING:
			{
				StringInfoData buf;

				initStringInfo(&buf);
				for (int k = 0; k < t->n; k++)
				{
					if (t->parts[k].placeholder)
						append_value(&buf, &t->parts[k], customer, offer);
					else
						appendStringInfoString(&buf, t->parts[k].text);
				}
				return json_stringn(buf.data, buf.len);
			}
	}
	return json_null();
}

/*
 * The creative's content for one decision (a new reference): the content as
 * stored when it holds no placeholder, else rendered for the customer's
 * attributes and the offer.
 */
json_t *
kaireon_creative_content(const KCreative *cr, const KOffer *offer, json_t *customer_attrs)
{
	if (cr->content_tpl == NULL)
		return json_incref(cr->content ? cr->content : json_object());
	return render(cr->content_tpl, customer_attrs, offer);
}
