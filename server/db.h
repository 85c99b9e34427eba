/* db.h — reads of the message store (MySQL/MariaDB) off the event loop.
 *
 * libmariadb blocks, so queries run on a small pool of threads, each with
 * its own connection and its own prepared statements. The loop hands a query
 * over through a locked queue; the answer comes back through a uv_async_t
 * and the callback runs on the loop. Nothing here ever blocks the loop.
 *
 * Connections are made lazily by the thread that needs one and dropped after
 * any error (a query that finds its connection gone, e.g. after a MariaDB
 * restart, runs once more on a new one); a thread whose connect failed does
 * not try again for a short while (queries fail at once meanwhile), so a
 * MySQL outage costs fast 503s, not a queue of stuck requests. Only
 * prepared statements, prepared once per connection; values are always
 * bound, never written into SQL text. Results are read row by row as they
 * arrive, never buffered whole, and a read can be bounded by bytes.
 */
#ifndef LECTERN_DB_H
#define LECTERN_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "envelope.h"
#include "msgid.h"
#include "mysqlconn.h"

typedef struct db db;

typedef struct db_config {
    mysqlconn_config conn;       /* the store (mysql.*): every thread connects with it */
    int threads;                 /* pool size, >= 1 (mysql.pool) */
} db_config;

/* One range of a room's stored messages: after < id < before (both
 * exclusive; {0,0} .. {UINT64_MAX,UINT64_MAX} span every real id, as a
 * stream id is never 0-0), at most `limit` rows, oldest or newest first.
 * A caller wanting a bound row itself widens the bound by one id.
 *
 * With max_bytes, the read also ends before the row that would bring the
 * rows' bytes (db_row_bytes: their variable-length columns) past it. The
 * first min_rows rows are returned whatever their size and do not count
 * (a caller's anchor rows, and the one row a page always holds). So a read
 * holds at most max_bytes plus min_rows messages, whatever the limit. */
typedef struct db_query {
    const char *room;            /* borrowed; copied by db_fetch */
    msgid after, before;
    bool descending;             /* newest first (else oldest first) */
    size_t limit;                /* >= 1 */
    size_t max_bytes;            /* 0: no byte bound */
    size_t min_rows;             /* returned whatever their size; not counted */
} db_query;

/* rows: n messages in the order asked for (borrowed for the duration of
 * the callback; every field set, sender/sender_name/origin at least "");
 * cut: the read ended at max_bytes and the range has more rows; ok false
 * (rows NULL) with a reason when MySQL could not answer. */
typedef void (*db_fn)(void *ctx, const envelope *rows, size_t n, bool cut, bool ok,
                      const char *why);

/* The bytes a row counts against max_bytes: sender, sender_name,
 * content_type, headers, body and origin. */
size_t db_row_bytes(const envelope *e);

/* Start the pool (threads connect when they first need to). The program
 * has called mysqlconn_library_init (main.c) before starting any thread.
 * Strings are copied. Returns NULL (logged) when a thread or the async handle cannot be
 * created. */
db *db_create(uv_loop_t *loop, const db_config *cfg);

/* Stop the pool: joins the threads (a query in progress finishes first,
 * bounded by timeout_s); queued queries complete with ok false before this
 * returns. Accepts NULL. The loop must run once more afterwards. */
void db_destroy(db *d);

/* Queue q (copied, room included); fn(ctx, ...) runs later on the loop,
 * exactly once, never inside this call. Must be called on the loop. */
void db_fetch(db *d, const db_query *q, db_fn fn, void *ctx);

/* A job of some other module on a pool thread (db_run). It runs with the
 * thread's connection (never NULL; autocommit on: a job that opens a
 * transaction commits it before returning 0), arg as given to db_run.
 * Returns 0, or -1 with the reason in why and the MySQL error number in
 * *err (mysql_errno or mysql_stmt_errno of what failed). After -1 the
 * connection is closed (rolling back what was not committed); when it had
 * worked before and *err says it was lost, the job runs once more on a new
 * one, so a job must be safe to run again from its start. */
typedef int (*db_job_fn)(MYSQL *conn, void *arg, unsigned *err, char *why,
                         size_t whylen);
/* Back on the loop: ok false with why when MySQL could not be reached or
 * the job returned -1 (why borrowed for the call). */
typedef void (*db_done_fn)(void *ctx, bool ok, const char *why);

/* Run job(conn, arg, ...) on a pool thread with db.c's connection rules
 * (lazy connect, the retry after a lost connection, fast failure for a
 * while after a failed connect), then done(ctx, ...) on the loop, exactly
 * once, never inside this call (db_destroy: ok false, the job not run).
 * arg is the caller's and must stay valid until done; the job touches it
 * only on the pool thread, done only on the loop. Must be called on the
 * loop. */
void db_run(db *d, db_job_fn job, void *arg, db_done_fn done, void *ctx);

/* Failed calls (connect or query) so far. */
uint64_t db_errors(const db *d);

#endif
