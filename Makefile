# kaireon: PGXS build. `make`, `make install`, `make installcheck` (run by test/run.sh
# against a private server; see docs/testing.md).

EXTENSION    = kaireon
EXTVERSION   = 0.2.0
MODULE_big   = kaireon

SRCS         = $(sort $(wildcard src/*.c src/*/*.c src/*/*/*.c))
OBJS         = $(SRCS:.c=.o)
KAIREON_HDRS  = $(wildcard src/*.h src/*/*.h src/*/*/*.h)

# The install script of the version under development is assembled from one file per domain
# under sql/install/. Released versions' install scripts (sql/kaireon--0.1.0.sql) are frozen,
# committed files, and each release has an upgrade script sql/kaireon--A--B.sql to the next
# (docs/upgrades.md); DATA installs them all.
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built   = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA         = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

# The user documentation, which error hints and COMMENTs cite as docs/<page>.md: installed
# into $(docdir)/extension/kaireon/ (docmoduledir, set below), not PGXS's flat
# $(docdir)/extension/, where other extensions' pages of the same names would collide.
DOCS         = $(wildcard docs/*.md)

# pg_regress: sql/<test>.sql -> expected/<test>.out
REGRESS      = $(shell cat test/regress_schedule)
REGRESS_OPTS = --load-extension=$(EXTENSION)

# pg_isolation_regress: test/isolation/specs/<test>.spec -> test/isolation/expected/<test>.out
ISOLATION      = $(basename $(notdir $(sort $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=$(EXTENSION)

# TAP: test/t/*.pl with PostgreSQL::Test::Cluster
TAP_TESTS    = 1
PROVE_TESTS  = $(sort $(wildcard test/t/*.pl))

PKG_CONFIG  ?= pkg-config
DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson openssl)
DEPS_LIBS   := $(shell $(PKG_CONFIG) --libs jansson openssl)

PG_CPPFLAGS  = -I$(srcdir)/src $(DEPS_CFLAGS)
SHLIB_LINK  += $(DEPS_LIBS)
PG_CFLAGS   += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(WERROR),1)
PG_CFLAGS   += -Werror
endif

EXTRA_CLEAN  = output_iso tmp_check tmp_check_iso results regression.diffs regression.out

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

docmoduledir := extension/$(EXTENSION)

# PGXS's uninstall removes DOCS by their source paths (docs/<page>.md); the pages are installed
# by their names.
uninstall: uninstall-docs
uninstall-docs:
	rm -f $(addprefix '$(DESTDIR)$(docdir)/$(docmoduledir)'/, $(notdir $(DOCS)))
	rmdir '$(DESTDIR)$(docdir)/$(docmoduledir)' 2>/dev/null || true

$(DATA_built): $(INSTALL_PARTS)
	cat $^ > $@

$(OBJS): $(KAIREON_HDRS)

# The three suites one at a time, so test/run.sh can run them all and report each.
installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

installcheck-tap:
	$(prove_installcheck)

.PHONY: installcheck-regress installcheck-isolation installcheck-tap uninstall-docs
