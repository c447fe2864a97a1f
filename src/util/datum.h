/*
 * util/datum.h
 *	  Building datums for SPI arguments (util/datum.c).
 */
#ifndef KAIREON_UTIL_DATUM_H
#define KAIREON_UTIL_DATUM_H

#include "postgres.h"

extern Datum kd_array(Datum *values, bool *nulls, int n, Oid type);

#endif							/* KAIREON_UTIL_DATUM_H */
