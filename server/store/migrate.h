/* capstan: schema migrations.
 *
 * Migrations are the numbered files of migrations/ ("0001_foundation.sql"), embedded in the
 * binary. They are applied in order, each in its own transaction, under a PostgreSQL advisory
 * lock so that several processes starting at once apply each one once. Each applied file is
 * recorded in schema_migrations with its SHA-256; a file whose content changed after it was
 * applied is refused, naming it. */
#ifndef CAPSTAN_STORE_MIGRATE_H
#define CAPSTAN_STORE_MIGRATE_H

#include "store/store.h"
#include "util/embedded.h"

#include <stdbool.h>

/* Applies the pending migrations of files (a table ended by a NULL name) on c. *applied gets
 * the number applied now. CAP_ECONFLICT when an applied file changed or a file name is not
 * of the form NNNN_name.sql; CAP_EUNAVAILABLE when the database is unreachable. */
int store_migrate(struct store_conn *c, const struct embedded_file *files, int *applied);

/* *current is true if every migration of files is applied and unchanged. */
int store_migrations_current(struct store_conn *c, const struct embedded_file *files,
                             bool *current);

#endif
