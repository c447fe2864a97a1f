/*
 * util/version.h
 *	  The one home of kaireon's versions: the library's own version and the
 *	  versions of the extension's SQL (kaireon.control's default_version and
 *	  every released one) this library knows. docs/upgrades.md.
 *
 * A new version under development adds itself at the end of
 * KAIREON_SQL_VERSIONS and becomes KAIREON_VERSION; released versions stay in
 * the list, because the library must still load under their SQL (the symbols
 * their SQL names keep existing) until ALTER EXTENSION kaireon UPDATE.
 */
#ifndef KAIREON_UTIL_VERSION_H
#define KAIREON_UTIL_VERSION_H

#include "postgres.h"

/* This library's version (kaireon.version()); the SQL version it serves. */
#define KAIREON_VERSION "0.2.0"

/* Every SQL version this library knows, oldest first; the last is KAIREON_VERSION. */
#define KAIREON_SQL_VERSIONS { "0.1.0", "0.2.0" }

/*
 * Error unless the installed SQL objects (pg_extension.extversion) are
 * KAIREON_VERSION: 55000 with "run ALTER EXTENSION kaireon UPDATE" for an
 * older version this library knows, 0A000 for a version it does not know.
 * Reads the catalog again only after a function changed (util/version.c).
 */
extern void kaireon_require_sql_version(void);

/* Load-time initialisation (_PG_init). */
extern void kaireon_version_init(void);

#endif							/* KAIREON_UTIL_VERSION_H */
