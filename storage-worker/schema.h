/* schema.h — the message store's schema, as versioned migrations.
 *
 * The migrations are the files storage-worker/schema/NNNN_name.sql, compiled
 * into the binary by scripts/embed-sql (so a worker always carries the
 * schema it writes). Each holds one or more statements, each ended by ';'
 * at the end of a line. lectern-storage applies, at start, every migration
 * whose version is above the highest recorded in schema_migrations.
 */
#ifndef LECTERN_SCHEMA_H
#define LECTERN_SCHEMA_H

#include <stddef.h>

typedef struct schema_migration {
    int version;             /* NNNN of the file name; 0 ends the table */
    const char *name;        /* file name */
    const char *sql;         /* its statements, comment lines removed */
} schema_migration;

/* Ordered by version, ended by { 0, NULL, NULL }. */
extern const schema_migration schema_migrations[];

/* Split a migration's text into statements, one per call (pure; schema.c).
 * A statement ends with a ';' that is last on its line (trailing blanks
 * allowed), or with the end of the text. *text is advanced past the
 * statement; *stmt points at its first non-blank byte inside the caller's
 * text. Returns its length without the ';' (never 0), or 0 when only white
 * space is left. */
size_t schema_next_statement(const char **text, const char **stmt);

#endif
