/* db_redact.c — tombstone rows in MySQL, through db.c's pool (see db_redact.h).
 *
 * db_redact_write is one upsert:
 *   INSERT INTO messages (...) VALUES (...)
 *   ON DUPLICATE KEY UPDATE body = '', content_type = NULL, headers = VALUES(headers)
 * so it does the right thing whether or not lectern-storage has written the
 * message yet: the worker's own insert of the original later finds the key
 * and changes nothing (its ODKU is id_ms = id_ms). Every value comes from
 * the room log's entry, which is what the worker would have written.
 *
 * db_redact_stored is for a message only MySQL holds (the log trimmed or
 * expired). One UPDATE that matches only a row that is not a tombstone yet
 * both tests and sets, atomically in the row: one affected row is DONE;
 * none means the row is a tombstone already or does not exist, which one
 * SELECT tells apart (and answers the tombstone's headers for ALREADY).
 * Two concurrent redactions of one stored message thus see one DONE and
 * one ALREADY.
 */
#include "db_redact.h"

#include "mem.h"
#include "msgid.h"

#include <mysql.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBR_TOMB_PREFIX "x-redacted-by:"
#define DBR_EVENT_PREFIX "x-redacts:"    /* a redaction event: never redacted */
/* Headers longer than this in an existing tombstone are not read back
 * whole (they never are: two short lines). */
#define DBR_HEADERS_MAX 1024

typedef struct dbr_job {
    envelope row;              /* room, id, ...; headers: the tombstone's */
    msgid id;
    bool full;                 /* db_redact_write (else db_redact_stored) */
    db_redact_fn fn;
    void *ctx;
    /* results (the pool thread's until done) */
    db_redact_status status;
    char old[DBR_HEADERS_MAX];
    size_t old_len;
} dbr_job;

/* --- on the pool thread -------------------------------------------------------- */

static void dbr_bind_bytes(MYSQL_BIND *b, enum enum_field_types type, const void *p, size_t n,
                           unsigned long *len)
{
    memset(b, 0, sizeof *b);
    *len = (unsigned long)n;
    b->buffer_type = type;
    b->buffer = (void *)(uintptr_t)(p ? p : "");
    b->buffer_length = *len;
    b->length = len;
}

static void dbr_bind_str(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    dbr_bind_bytes(b, MYSQL_TYPE_STRING, s, s ? strlen(s) : 0, len);
}

static void dbr_bind_u64(MYSQL_BIND *b, const uint64_t *v)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = (void *)(uintptr_t)v;
    b->is_unsigned = 1;
}

static int dbr_fail(MYSQL_STMT *st, MYSQL *conn, unsigned *err, char *why, size_t whylen)
{
    *err = st ? mysql_stmt_errno(st) : mysql_errno(conn);
    snprintf(why, whylen, "redact: %s", st ? mysql_stmt_error(st) : mysql_error(conn));
    if (st)
        mysql_stmt_close(st);
    return -1;
}

/* Prepare sql, bind in[] and execute: the statement (closed by the
 * caller), or NULL with *err and why. */
static MYSQL_STMT *dbr_exec(MYSQL *conn, const char *sql, MYSQL_BIND *in, unsigned *err,
                            char *why, size_t whylen)
{
    MYSQL_STMT *st = mysql_stmt_init(conn);
    if (!st || mysql_stmt_prepare(st, sql, strlen(sql)) != 0 ||
        mysql_stmt_bind_param(st, in) != 0 || mysql_stmt_execute(st) != 0) {
        dbr_fail(st, conn, err, why, whylen);
        return NULL;
    }
    return st;
}

static int dbr_write(MYSQL *conn, dbr_job *j, unsigned *err, char *why, size_t whylen)
{
    static const char sql[] =
        "INSERT INTO messages (room, id_ms, id_n, epoch, seq, ts_ms, sender, sender_name,"
        " content_type, headers, body, origin) VALUES (?,?,?,?,?,?,?,?,NULL,?,'',?)"
        " ON DUPLICATE KEY UPDATE body = '', content_type = NULL, headers = VALUES(headers)";
    const envelope *e = &j->row;
    MYSQL_BIND in[10];
    unsigned long len[10];
    dbr_bind_str(&in[0], e->room, &len[0]);
    dbr_bind_u64(&in[1], &j->id.ms);
    dbr_bind_u64(&in[2], &j->id.n);
    dbr_bind_u64(&in[3], &e->epoch);
    dbr_bind_u64(&in[4], &e->seq);
    dbr_bind_u64(&in[5], &e->ts_ms);
    dbr_bind_str(&in[6], e->sender, &len[6]);
    dbr_bind_str(&in[7], e->sender_name, &len[7]);
    dbr_bind_bytes(&in[8], MYSQL_TYPE_BLOB, e->headers, e->headers_len, &len[8]);
    dbr_bind_str(&in[9], e->origin, &len[9]);
    MYSQL_STMT *st = dbr_exec(conn, sql, in, err, why, whylen);
    if (!st)
        return -1;
    mysql_stmt_close(st);
    j->status = DB_REDACT_DONE;
    return 0;
}

static int dbr_stored(MYSQL *conn, dbr_job *j, unsigned *err, char *why, size_t whylen)
{
    static const char upd[] =
        "UPDATE messages SET body = '', content_type = NULL, headers = ?"
        " WHERE room = ? AND id_ms = ? AND id_n = ?"
        " AND (headers IS NULL OR (headers NOT LIKE '" DBR_TOMB_PREFIX "%'"
        " AND headers NOT LIKE '" DBR_EVENT_PREFIX "%'))";
    static const char sel[] =
        "SELECT headers FROM messages WHERE room = ? AND id_ms = ? AND id_n = ?";
    MYSQL_BIND in[4];
    unsigned long len[4];
    dbr_bind_bytes(&in[0], MYSQL_TYPE_BLOB, j->row.headers, j->row.headers_len, &len[0]);
    dbr_bind_str(&in[1], j->row.room, &len[1]);
    dbr_bind_u64(&in[2], &j->id.ms);
    dbr_bind_u64(&in[3], &j->id.n);
    MYSQL_STMT *st = dbr_exec(conn, upd, in, err, why, whylen);
    if (!st)
        return -1;
    my_ulonglong n = mysql_stmt_affected_rows(st);
    mysql_stmt_close(st);
    if (n == 1) {
        j->status = DB_REDACT_DONE;
        return 0;
    }
    st = dbr_exec(conn, sel, &in[1], err, why, whylen);
    if (!st)
        return -1;
    unsigned long hl = 0;
    my_bool is_null = 0, trunc = 0;
    MYSQL_BIND out;
    memset(&out, 0, sizeof out);
    out.buffer_type = MYSQL_TYPE_BLOB;
    out.buffer = j->old;
    out.buffer_length = sizeof j->old;
    out.length = &hl;
    out.is_null = &is_null;
    out.error = &trunc;
    if (mysql_stmt_bind_result(st, &out) != 0)
        return dbr_fail(st, conn, err, why, whylen);
    int rc = mysql_stmt_fetch(st);
    if (rc == 1)
        return dbr_fail(st, conn, err, why, whylen);
    mysql_stmt_close(st);
    size_t ep = sizeof DBR_EVENT_PREFIX - 1;
    if (rc == MYSQL_NO_DATA ||
        (!is_null && hl >= ep && !memcmp(j->old, DBR_EVENT_PREFIX, ep))) {
        j->status = DB_REDACT_NOT_FOUND;     /* none, or a redaction event */
    } else {
        /* The UPDATE matched nothing: the row is a tombstone. */
        j->status = DB_REDACT_ALREADY;
        j->old_len = is_null ? 0 : hl < sizeof j->old ? hl : sizeof j->old;
    }
    return 0;
}

static int dbr_job_main(MYSQL *conn, void *arg, unsigned *err, char *why, size_t whylen)
{
    dbr_job *j = arg;
    j->status = DB_REDACT_FAILED;
    j->old_len = 0;
    return j->full ? dbr_write(conn, j, err, why, whylen) : dbr_stored(conn, j, err, why, whylen);
}

/* --- on the loop ------------------------------------------------------------------ */

static void dbr_done(void *ctx, bool ok, const char *why)
{
    dbr_job *j = ctx;
    db_redact_result r = { ok ? j->status : DB_REDACT_FAILED, ok ? NULL : why, NULL, 0 };
    if (r.status == DB_REDACT_FAILED && !r.why)
        r.why = "redact: MySQL failed";
    if (r.status == DB_REDACT_ALREADY) {
        r.headers = j->old;
        r.headers_len = j->old_len;
    }
    j->fn(j->ctx, &r);
    envelope_free(&j->row);
    free(j);
}

void db_redact_write(db *d, const envelope *tomb, db_redact_fn fn, void *ctx)
{
    dbr_job *j = xcalloc(1, sizeof *j);
    envelope_copy(&j->row, tomb);
    if (msgid_parse(j->row.id, strlen(j->row.id), &j->id) < 0)
        j->id = (msgid){ 0, 0 };   /* cannot be: the room log gave it */
    j->full = true;
    j->fn = fn;
    j->ctx = ctx;
    db_run(d, dbr_job_main, j, dbr_done, j);
}

void db_redact_stored(db *d, const char *room, const char *id, const char *headers,
                      size_t headers_len, db_redact_fn fn, void *ctx)
{
    dbr_job *j = xcalloc(1, sizeof *j);
    j->row.room = xstrdup(room);
    j->row.id = xstrdup(id);
    msgid_parse(id, strlen(id), &j->id);
    j->row.headers = xmalloc(headers_len + 1);
    memcpy(j->row.headers, headers, headers_len);
    j->row.headers_len = headers_len;
    j->fn = fn;
    j->ctx = ctx;
    db_run(d, dbr_job_main, j, dbr_done, j);
}
