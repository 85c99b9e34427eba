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

typedef struct schema_migration {
    int version;             /* NNNN of the file name; 0 ends the table */
    const char *name;        /* file name */
    const char *sql;         /* its statements, comment lines removed */
} schema_migration;

/* Ordered by version, ended by { 0, NULL, NULL }. */
extern const schema_migration schema_migrations[];

#endif
