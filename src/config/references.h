/*
 * config/references.h
 *	  Checked and optional references between tenant tables (config/references.c):
 *	  the module's init (the relcache callback of its trigger cache).
 */
#ifndef KAIREON_CONFIG_REFERENCES_H
#define KAIREON_CONFIG_REFERENCES_H

extern void kaireon_references_init(void);

#endif
