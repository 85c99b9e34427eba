/* db_contacts.c — contact lists in MySQL, through db.c's pool.
 *
 * Each call copies its input into a job (dbc_job), runs one function of
 * this file on a pool thread (db_run) and answers on the loop. A job is
 * re-runnable from its start (db.c runs it once more after a lost
 * connection): its results are reset first, and every write is one
 * transaction, so a half-done first attempt was rolled back with its
 * connection.
 *
 * Statements are prepared per call from fixed text; multi-row statements
 * (INSERT of many contacts, DELETE ... IN of many) are built from a count
 * of placeholders, never from input, in chunks of DBC_CHUNK rows. The read
 * is one statement (contact_lists LEFT JOIN contacts), so "has a list" and
 * the list come from one snapshot:
 *   no row            no stored list
 *   one NULL contact  a stored, empty list
 *   rows              the list, ordered bytewise (VARBINARY)
 * Writes first upsert the user's contact_lists row: that creates the
 * "stored" mark and locks the row, so two writers of one list take turns.
 */
#include "db_contacts.h"

#include "mem.h"
#include "userid.h"

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBC_CHUNK 100

typedef enum { DBC_READ, DBC_REPLACE, DBC_PATCH, DBC_DELETE } dbc_op;

typedef struct dbc_job {
    dbc_op op;
    char *user;
    char **add, **remove;         /* replace: add is the new list */
    size_t nadd, nremove, max;
    db_contacts_fn fn;
    void *ctx;
    /* results (the pool thread's until done) */
    bool stored, too_many;
    size_t count;
    char **ids;                   /* read */
    size_t nids;
} dbc_job;

static char **dbc_copy(const char *const *v, size_t n)
{
    char **out = xcalloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void dbc_free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void dbc_reset(dbc_job *j)
{
    dbc_free_list(j->ids, j->nids);
    j->ids = NULL;
    j->nids = 0;
    j->stored = j->too_many = false;
    j->count = 0;
}

/* --- on the pool thread -------------------------------------------------------- */

static void dbc_bind_str(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    memset(b, 0, sizeof *b);
    *len = (unsigned long)strlen(s);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)(uintptr_t)s;
    b->buffer_length = *len;
    b->length = len;
}

static int dbc_stmt_fail(MYSQL_STMT *st, MYSQL *conn, unsigned *err, char *why, size_t whylen)
{
    *err = st ? mysql_stmt_errno(st) : mysql_errno(conn);
    snprintf(why, whylen, "contacts: %s", st ? mysql_stmt_error(st) : mysql_error(conn));
    if (st)
        mysql_stmt_close(st);
    return -1;
}

/* Prepare sql, bind in[] and execute. Returns the statement (the caller
 * reads it, then closes it), or NULL with *err and why. */
static MYSQL_STMT *dbc_exec(MYSQL *conn, const char *sql, MYSQL_BIND *in, unsigned *err,
                            char *why, size_t whylen)
{
    MYSQL_STMT *st = mysql_stmt_init(conn);
    if (!st || mysql_stmt_prepare(st, sql, strlen(sql)) != 0 ||
        (in && mysql_stmt_bind_param(st, in) != 0) || mysql_stmt_execute(st) != 0) {
        dbc_stmt_fail(st, conn, err, why, whylen);
        return NULL;
    }
    return st;
}

/* A statement without a result (bound values in[]). 0 or -1. */
static int dbc_do(MYSQL *conn, const char *sql, MYSQL_BIND *in, unsigned *err, char *why,
                  size_t whylen)
{
    MYSQL_STMT *st = dbc_exec(conn, sql, in, err, why, whylen);
    if (!st)
        return -1;
    mysql_stmt_close(st);
    return 0;
}

/* Fixed statement text (no values): START TRANSACTION, COMMIT. */
static int dbc_query(MYSQL *conn, const char *sql, unsigned *err, char *why, size_t whylen)
{
    if (mysql_real_query(conn, sql, strlen(sql)) == 0)
        return 0;
    return dbc_stmt_fail(NULL, conn, err, why, whylen);
}

/* Run `head` followed by k copies of `row` joined by `sep` and then `tail`
 * for the ids v[0..n), DBC_CHUNK at a time: each row binds user (when
 * with_user) and one id; the head binds user once (when head_user). */
static int dbc_many(MYSQL *conn, const char *head, bool head_user, const char *row,
                    bool with_user, const char *sep, const char *tail, const char *user,
                    char *const *v, size_t n, unsigned *err, char *why, size_t whylen)
{
    MYSQL_BIND in[1 + 2 * DBC_CHUNK];
    unsigned long lens[1 + 2 * DBC_CHUNK];
    size_t cap = strlen(head) + strlen(tail) + DBC_CHUNK * (strlen(row) + strlen(sep)) + 1;
    char *sql = xmalloc(cap);
    int rc = 0;
    for (size_t at = 0; at < n && rc == 0; at += DBC_CHUNK) {
        size_t k = n - at < DBC_CHUNK ? n - at : DBC_CHUNK, b = 0;
        size_t len = (size_t)snprintf(sql, cap, "%s", head);
        for (size_t i = 0; i < k; i++)
            len += (size_t)snprintf(sql + len, cap - len, "%s%s", i ? sep : "", row);
        snprintf(sql + len, cap - len, "%s", tail);
        if (head_user)
            dbc_bind_str(&in[b], user, &lens[b]), b++;
        for (size_t i = 0; i < k; i++) {
            if (with_user)
                dbc_bind_str(&in[b], user, &lens[b]), b++;
            dbc_bind_str(&in[b], v[at + i], &lens[b]), b++;
        }
        rc = dbc_do(conn, sql, in, err, why, whylen);
    }
    free(sql);
    return rc;
}

static int dbc_run_read(MYSQL *conn, dbc_job *j, unsigned *err, char *why, size_t whylen)
{
    static const char sql[] =
        "SELECT c.contact_id FROM contact_lists l LEFT JOIN contacts c ON c.user_id = l.user_id"
        " WHERE l.user_id = ? ORDER BY c.contact_id LIMIT ?";
    MYSQL_BIND in[2];
    unsigned long ulen;
    unsigned long long limit = j->max ? j->max : 1;
    dbc_bind_str(&in[0], j->user, &ulen);
    memset(&in[1], 0, sizeof in[1]);
    in[1].buffer_type = MYSQL_TYPE_LONGLONG;
    in[1].buffer = &limit;
    in[1].is_unsigned = 1;
    MYSQL_STMT *st = dbc_exec(conn, sql, in, err, why, whylen);
    if (!st)
        return -1;
    char id[USERID_MAX + 1];
    unsigned long len = 0;
    my_bool is_null = 0, trunc = 0;
    MYSQL_BIND out;
    memset(&out, 0, sizeof out);
    out.buffer_type = MYSQL_TYPE_STRING;
    out.buffer = id;
    out.buffer_length = sizeof id;
    out.length = &len;
    out.is_null = &is_null;
    out.error = &trunc;
    if (mysql_stmt_bind_result(st, &out) != 0)
        return dbc_stmt_fail(st, conn, err, why, whylen);
    j->ids = xcalloc(j->max ? j->max : 1, sizeof *j->ids);
    for (;;) {
        int rc = mysql_stmt_fetch(st);
        if (rc == MYSQL_NO_DATA)
            break;
        if (rc == 1)
            return dbc_stmt_fail(st, conn, err, why, whylen);
        j->stored = true;
        /* A row written by hand that breaks the id rule is left out. */
        if (is_null || rc == MYSQL_DATA_TRUNCATED || !userid_valid(id, len) ||
            j->nids == j->max)
            continue;
        j->ids[j->nids++] = xstrndup(id, len);
    }
    mysql_stmt_close(st);
    j->count = j->nids;
    return 0;
}

/* Upsert the user's contact_lists row (the "stored" mark; locks it). */
static int dbc_mark(MYSQL *conn, dbc_job *j, unsigned *err, char *why, size_t whylen)
{
    MYSQL_BIND in[1];
    unsigned long ulen;
    dbc_bind_str(&in[0], j->user, &ulen);
    return dbc_do(conn, "INSERT INTO contact_lists (user_id) VALUES (?)"
                        " ON DUPLICATE KEY UPDATE updated_at = CURRENT_TIMESTAMP(3)",
                  in, err, why, whylen);
}

static int dbc_delete_all(MYSQL *conn, dbc_job *j, unsigned *err, char *why, size_t whylen)
{
    MYSQL_BIND in[1];
    unsigned long ulen;
    dbc_bind_str(&in[0], j->user, &ulen);
    return dbc_do(conn, "DELETE FROM contacts WHERE user_id = ?", in, err, why, whylen);
}

static int dbc_insert(MYSQL *conn, dbc_job *j, unsigned *err, char *why, size_t whylen)
{
    return dbc_many(conn, "INSERT IGNORE INTO contacts (user_id, contact_id) VALUES ", false,
                    "(?, ?)", true, ", ", "", j->user, j->add, j->nadd, err, why, whylen);
}

static int dbc_count(MYSQL *conn, dbc_job *j, unsigned *err, char *why, size_t whylen)
{
    MYSQL_BIND in[1], out;
    unsigned long ulen;
    unsigned long long n = 0;
    dbc_bind_str(&in[0], j->user, &ulen);
    MYSQL_STMT *st = dbc_exec(conn, "SELECT COUNT(*) FROM contacts WHERE user_id = ?", in, err,
                              why, whylen);
    if (!st)
        return -1;
    memset(&out, 0, sizeof out);
    out.buffer_type = MYSQL_TYPE_LONGLONG;
    out.buffer = &n;
    out.is_unsigned = 1;
    if (mysql_stmt_bind_result(st, &out) != 0 || mysql_stmt_fetch(st) != 0)
        return dbc_stmt_fail(st, conn, err, why, whylen);
    mysql_stmt_close(st);
    j->count = (size_t)n;
    return 0;
}

static int dbc_job_main(MYSQL *conn, void *arg, unsigned *err, char *why, size_t whylen)
{
    dbc_job *j = arg;
    dbc_reset(j);
    if (j->op == DBC_READ)
        return dbc_run_read(conn, j, err, why, whylen);
    if (dbc_query(conn, "START TRANSACTION", err, why, whylen) < 0)
        return -1;
    int rc = 0;
    switch (j->op) {
    case DBC_REPLACE:
        rc = dbc_mark(conn, j, err, why, whylen);
        if (!rc)
            rc = dbc_delete_all(conn, j, err, why, whylen);
        if (!rc)
            rc = dbc_insert(conn, j, err, why, whylen);
        j->count = j->nadd;
        break;
    case DBC_PATCH:
        rc = dbc_mark(conn, j, err, why, whylen);
        if (!rc && j->nremove)
            rc = dbc_many(conn, "DELETE FROM contacts WHERE user_id = ? AND contact_id IN (", true,
                          "?", false, ", ", ")", j->user, j->remove, j->nremove, err, why,
                          whylen);
        if (!rc)
            rc = dbc_insert(conn, j, err, why, whylen);
        if (!rc)
            rc = dbc_count(conn, j, err, why, whylen);
        if (!rc && j->count > j->max) {
            j->too_many = true;
            return dbc_query(conn, "ROLLBACK", err, why, whylen);
        }
        break;
    case DBC_DELETE: {
        MYSQL_BIND in[1];
        unsigned long ulen;
        dbc_bind_str(&in[0], j->user, &ulen);
        rc = dbc_delete_all(conn, j, err, why, whylen);
        if (!rc)
            rc = dbc_do(conn, "DELETE FROM contact_lists WHERE user_id = ?", in, err, why,
                        whylen);
        break;
    }
    case DBC_READ:
        break;
    }
    if (rc)
        return -1;      /* db.c closes the connection: the transaction is rolled back */
    return dbc_query(conn, "COMMIT", err, why, whylen);
}

/* --- on the loop ------------------------------------------------------------------ */

static void dbc_job_free(dbc_job *j)
{
    free(j->user);
    dbc_free_list(j->add, j->nadd);
    dbc_free_list(j->remove, j->nremove);
    dbc_free_list(j->ids, j->nids);
    free(j);
}

static void dbc_done(void *ctx, bool ok, const char *why)
{
    dbc_job *j = ctx;
    db_contacts_result r = {
        .ok = ok,
        .why = why,
        .stored = ok && j->stored,
        .too_many = ok && j->too_many,
        .count = ok ? j->count : 0,
        .ids = ok && j->ids ? (const char *const *)j->ids : NULL,
    };
    if (ok && j->op == DBC_READ)
        r.count = j->nids;
    j->fn(j->ctx, &r);
    dbc_job_free(j);
}

static dbc_job *dbc_job_new(dbc_op op, const char *user, db_contacts_fn fn, void *ctx)
{
    dbc_job *j = xcalloc(1, sizeof *j);
    j->op = op;
    j->user = xstrdup(user);
    j->fn = fn;
    j->ctx = ctx;
    return j;
}

void db_contacts_read(db *d, const char *user, size_t max, db_contacts_fn fn, void *ctx)
{
    dbc_job *j = dbc_job_new(DBC_READ, user, fn, ctx);
    j->max = max;
    db_run(d, dbc_job_main, j, dbc_done, j);
}

void db_contacts_replace(db *d, const char *user, const char *const *ids, size_t n,
                         db_contacts_fn fn, void *ctx)
{
    dbc_job *j = dbc_job_new(DBC_REPLACE, user, fn, ctx);
    j->add = dbc_copy(ids, n);
    j->nadd = n;
    db_run(d, dbc_job_main, j, dbc_done, j);
}

void db_contacts_patch(db *d, const char *user, const char *const *add, size_t nadd,
                       const char *const *remove, size_t nremove, size_t max,
                       db_contacts_fn fn, void *ctx)
{
    dbc_job *j = dbc_job_new(DBC_PATCH, user, fn, ctx);
    j->add = dbc_copy(add, nadd);
    j->nadd = nadd;
    j->remove = dbc_copy(remove, nremove);
    j->nremove = nremove;
    j->max = max;
    db_run(d, dbc_job_main, j, dbc_done, j);
}

void db_contacts_delete(db *d, const char *user, db_contacts_fn fn, void *ctx)
{
    dbc_job *j = dbc_job_new(DBC_DELETE, user, fn, ctx);
    db_run(d, dbc_job_main, j, dbc_done, j);
}
