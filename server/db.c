/* db.c — the message store's read side: a thread pool over libmariadb.
 *
 * Threads. db_create starts `threads` workers sharing one job queue (mutex +
 * condition variable). A worker takes one job, runs it on its own MYSQL
 * connection, appends the finished job to the done list (under the same
 * mutex) and wakes the loop with uv_async_send; db_on_async runs the
 * callbacks on the loop and frees the jobs. A job is always finished exactly
 * once: by a worker, or by db_destroy (ok false) if no worker took it.
 *
 * Connections. A worker connects when it first needs to (lib/mysqlconn:
 * TCP, timeouts from mysql.timeout_s; autocommit on: reads only) and
 * prepares its two statements (oldest first, newest first) once per
 * connection. Any error closes the connection; the next job reconnects. A
 * query that fails because a connection that had worked before is gone
 * (MariaDB restarted, idle timeout) is run once more on a fresh connection,
 * so a restart costs no failed request. After a failed connect the worker
 * fails jobs at once for DB_RETRY_MS, so that an outage answers quickly
 * instead of every request waiting for a connect timeout.
 *
 * Other modules' jobs (db_run: the contact lists) share the threads and
 * their connections: a job is a function run with the thread's MYSQL
 * handle, under the same connect, retry and failure rules; it prepares
 * what it needs itself.
 *
 * Statements. Every value is a bound parameter, never text in the SQL. The
 * id predicates "id_ms > ? OR (id_ms = ? AND id_n > ?)" (and the same for
 * the upper bound) let MariaDB read the primary key (room, id_ms, id_n) as
 * one range. Bounds are exclusive; callers that want a bound row widen the
 * bound by one id. Result columns of variable length are read with
 * mysql_stmt_fetch_column into buffers sized from the row.
 *
 * Reads are bounded by bytes as well as rows. A result is never stored
 * whole (no mysql_stmt_store_result): rows are fetched one at a time from
 * the connection, so the client library holds one row, and the job only
 * the rows it keeps. A job with max_bytes reads in chunks: the statement
 * runs with a LIMIT of DB_FIRST_CHUNK rows, then again from the last row
 * kept with as many rows as the average size so far says still fit, until
 * the limit, the end of the range, or a row that does not fit (the read is
 * then "cut"). The rest of a chunk is discarded unread (free_result drains
 * it), so a request for a thousand rows of 256 KiB costs max_bytes and a
 * few rows of transfer, not 256 MiB. Chunks are separate statements, but a
 * row stored between two of them is no different from one stored just
 * after a single read: the room-order check of history.c sees the gap.
 */
#include "db.h"

#include "log.h"
#include "mem.h"

#include <mysql.h>
#include <errmsg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_RETRY_MS     500
#define DB_NCOLS        11
#define DB_FIRST_CHUNK  4        /* rows of a byte-bounded read's first statement */

/* The two statements every connection prepares: the same page query in
 * both directions. Fixed text: every value is a placeholder. */
#define DB_SELECT(order)                                                                      \
    "SELECT id_ms, id_n, epoch, seq, ts_ms, sender, sender_name, content_type, headers, body," \
    " origin FROM messages WHERE room = ?"                                                    \
    " AND (id_ms > ? OR (id_ms = ? AND id_n > ?))"                                            \
    " AND (id_ms < ? OR (id_ms = ? AND id_n < ?))"                                            \
    " ORDER BY id_ms " order ", id_n " order " LIMIT ?"
static const char *const db_select[2] = { DB_SELECT("ASC"), DB_SELECT("DESC") };

typedef struct db_job {
    struct db_job *next;
    db_query q;                  /* q.room points at room */
    db_fn fn;
    void *ctx;
    db_job_fn run;               /* set: a db_run job (q and fn unused) */
    void *arg;
    db_done_fn done;
    envelope *rows;
    size_t n, cap;
    bool cut;                    /* ended at max_bytes with rows left */
    bool ok;
    char why[200];
    char room[];
} db_job;

typedef struct db_worker {
    db *d;
    pthread_t thread;
    bool started;
    MYSQL *conn;
    MYSQL_STMT *stmt[2];         /* [descending] */
    bool used;                   /* conn has answered a query */
    uint64_t failed_at;          /* monotonic ms of the last failed connect */
    char last_why[160];
} db_worker;

struct db {
    uv_loop_t *loop;
    uv_async_t async;
    mysqlconn_config conn;       /* strings owned (copies) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    db_job *jobs, **jobs_tail;   /* waiting */
    db_job *done, **done_tail;   /* finished, for the loop */
    bool stop;
    db_worker *workers;
    int nworkers;
    _Atomic uint64_t errors;
};

static uint64_t db_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- worker side ------------------------------------------------------------- */

static void db_worker_close(db_worker *w)
{
    for (int i = 0; i < 2; i++) {
        if (w->stmt[i])
            mysql_stmt_close(w->stmt[i]);
        w->stmt[i] = NULL;
    }
    if (w->conn)
        mysql_close(w->conn);
    w->conn = NULL;
    w->used = false;
}

static int db_worker_connect(db_worker *w, char *why, size_t whylen)
{
    db *d = w->d;
    w->conn = mysqlconn_open(&d->conn, why, whylen);
    if (!w->conn)
        return -1;
    for (int i = 0; i < 2; i++) {
        w->stmt[i] = mysql_stmt_init(w->conn);
        if (!w->stmt[i] ||
            mysql_stmt_prepare(w->stmt[i], db_select[i], strlen(db_select[i])) != 0) {
            snprintf(why, whylen, "prepare: %s",
                     w->stmt[i] ? mysql_stmt_error(w->stmt[i]) : mysql_error(w->conn));
            goto fail;
        }
    }
    log_info("mysql_up", "host=%s port=%d database=%s", d->conn.host, d->conn.port,
             d->conn.database);
    return 0;

fail:
    db_worker_close(w);
    return -1;
}

static void db_bind_u64(MYSQL_BIND *b, uint64_t *v)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
    b->is_unsigned = 1;
}

/* Read column col of the current row (variable length) into a new string. */
static char *db_fetch_text(MYSQL_STMT *st, unsigned col, unsigned long len, my_bool is_null,
                           size_t *out_len)
{
    *out_len = 0;
    if (is_null)
        return NULL;
    char *p = xmalloc(len + 1);
    if (len) {
        MYSQL_BIND b;
        memset(&b, 0, sizeof b);
        b.buffer_type = MYSQL_TYPE_BLOB;
        b.buffer = p;
        b.buffer_length = len;
        if (mysql_stmt_fetch_column(st, &b, col, 0) != 0)
            len = 0;
    }
    p[len] = '\0';
    *out_len = len;
    return p;
}

size_t db_row_bytes(const envelope *e)
{
    return (e->sender ? strlen(e->sender) : 0) + (e->sender_name ? strlen(e->sender_name) : 0) +
           (e->content_type ? strlen(e->content_type) : 0) + e->headers_len + e->body_len +
           (e->origin ? strlen(e->origin) : 0);
}

/* The current row (its numeric columns in num) into a new envelope of j. */
static void db_keep_row(MYSQL_STMT *st, db_job *j, const uint64_t num[5],
                        const unsigned long lens[DB_NCOLS], const my_bool nulls[DB_NCOLS])
{
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 16;
        j->rows = xrealloc(j->rows, j->cap * sizeof *j->rows);
    }
    envelope *e = &j->rows[j->n++];
    memset(e, 0, sizeof *e);
    char id[MSGID_MAX];
    msgid_format((msgid){ num[0], num[1] }, id);
    e->room = xstrdup(j->q.room);
    e->id = xstrdup(id);
    e->epoch = num[2];
    e->seq = num[3];
    e->ts_ms = num[4];
    size_t len;
    e->sender = db_fetch_text(st, 5, lens[5], nulls[5], &len);
    e->sender_name = db_fetch_text(st, 6, lens[6], nulls[6], &len);
    e->content_type = db_fetch_text(st, 7, lens[7], nulls[7], &len);
    e->headers = db_fetch_text(st, 8, lens[8], nulls[8], &e->headers_len);
    if (e->headers && !e->headers_len) {
        free(e->headers);
        e->headers = NULL;
    }
    e->body = db_fetch_text(st, 9, lens[9], nulls[9], &e->body_len);
    if (e->body && !e->body_len) {
        free(e->body);
        e->body = NULL;
    }
    e->origin = db_fetch_text(st, 10, lens[10], nulls[10], &len);
    if (!e->sender)
        e->sender = xstrdup("");
    if (!e->sender_name)
        e->sender_name = xstrdup("");
    if (!e->origin)
        e->origin = xstrdup("");
}

/* Run one job on w's connection, in chunks (see the essay). Returns 0, or
 * -1 with job->why and the MySQL error number in *err (the caller then
 * closes the connection). */
static int db_worker_query(db_worker *w, db_job *j, unsigned *err)
{
    const db_query *q = &j->q;
    MYSQL_STMT *st = w->stmt[q->descending ? 1 : 0];
    unsigned long room_len = strlen(q->room);
    msgid after = q->after, before = q->before;
    size_t counted = 0, bytes = 0;      /* against max_bytes; of every row kept */
    size_t chunk = q->max_bytes ? DB_FIRST_CHUNK : q->limit;

    while (j->n < q->limit) {
        size_t left = q->limit - j->n, ask = chunk < left ? chunk : left;
        uint64_t p[7] = { after.ms, after.ms, after.n, before.ms, before.ms, before.n,
                          (uint64_t)ask };
        MYSQL_BIND in[8];
        memset(in, 0, sizeof in);
        in[0].buffer_type = MYSQL_TYPE_STRING;
        in[0].buffer = (void *)(uintptr_t)q->room;
        in[0].buffer_length = room_len;
        in[0].length = &room_len;
        for (int i = 0; i < 7; i++)
            db_bind_u64(&in[i + 1], &p[i]);
        if (mysql_stmt_bind_param(st, in) != 0 || mysql_stmt_execute(st) != 0)
            goto fail;

        uint64_t num[5];
        unsigned long lens[DB_NCOLS];
        my_bool nulls[DB_NCOLS];
        MYSQL_BIND out[DB_NCOLS];
        memset(out, 0, sizeof out);
        memset(lens, 0, sizeof lens);
        memset(nulls, 0, sizeof nulls);
        for (int i = 0; i < DB_NCOLS; i++) {
            if (i < 5)
                db_bind_u64(&out[i], &num[i]);
            else
                out[i].buffer_type = MYSQL_TYPE_BLOB;   /* length only; fetched below */
            out[i].length = &lens[i];
            out[i].is_null = &nulls[i];
        }
        if (mysql_stmt_bind_result(st, out) != 0)
            goto fail;

        size_t got = 0;
        for (;;) {
            int rc = mysql_stmt_fetch(st);
            if (rc == MYSQL_NO_DATA)
                break;
            if (rc == 1)
                goto fail;
            got++;
            size_t size = 0;
            for (int i = 5; i < DB_NCOLS; i++)
                size += nulls[i] ? 0 : lens[i];
            if (j->n >= q->min_rows) {
                if (q->max_bytes && counted + size > q->max_bytes) {
                    j->cut = true;
                    break;
                }
                counted += size;
            }
            db_keep_row(st, j, num, lens, nulls);
            bytes += size;
            if (q->descending)
                before = (msgid){ num[0], num[1] };
            else
                after = (msgid){ num[0], num[1] };
        }
        mysql_stmt_free_result(st);         /* the rest of the chunk, unread */
        if (j->cut || got < ask)
            break;
        /* Next: as many rows as still fit at the average size so far (and
         * one more, which either fits or ends the read). */
        size_t avg = bytes / (j->n ? j->n : 1) + 1;
        chunk = (q->max_bytes > counted ? (q->max_bytes - counted) / avg : 0) + 1;
    }
    return 0;

fail:
    *err = mysql_stmt_errno(st);
    snprintf(j->why, sizeof j->why, "query: %s", mysql_stmt_error(st));
    mysql_stmt_free_result(st);         /* after reading the error: it clears it */
    return -1;
}

/* Is err the connection going away (rather than the statement failing)? */
static bool db_conn_lost(unsigned err)
{
    return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST ||
           err == 1927 /* ER_CONNECTION_KILLED */ || err == 4031 /* idle timeout */;
}

static void db_job_clear(db_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        envelope_free(&j->rows[i]);
    free(j->rows);
    j->rows = NULL;
    j->n = j->cap = 0;
    j->cut = false;
}

/* Make sure w has a connection. Returns 0, or -1 with j->why. */
static int db_worker_ensure(db_worker *w, db_job *j)
{
    db *d = w->d;
    if (w->conn)
        return 0;
    if (w->failed_at && db_now_ms() - w->failed_at < DB_RETRY_MS) {
        snprintf(j->why, sizeof j->why, "MySQL unavailable (%s)", w->last_why);
        return -1;
    }
    if (db_worker_connect(w, w->last_why, sizeof w->last_why) < 0) {
        w->failed_at = db_now_ms();
        atomic_fetch_add(&d->errors, 1);
        char q[200];
        log_warn("mysql_down", "host=%s port=%d reason=%s", d->conn.host, d->conn.port,
                 log_q(q, sizeof q, w->last_why, strlen(w->last_why)));
        snprintf(j->why, sizeof j->why, "MySQL unavailable (%s)", w->last_why);
        return -1;
    }
    w->failed_at = 0;
    return 0;
}

/* Run j on w: on a connection that had worked before and turns out to be
 * gone, once more on a fresh one. Sets j->ok, or j->why. */
static void db_worker_run(db_worker *w, db_job *j)
{
    db *d = w->d;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = w->conn && w->used;
        if (db_worker_ensure(w, j) < 0)
            return;
        unsigned err = 0;
        int rc = j->run ? j->run(w->conn, j->arg, &err, j->why, sizeof j->why)
                        : db_worker_query(w, j, &err);
        if (rc == 0) {
            w->used = true;
            j->ok = true;
            return;
        }
        db_job_clear(j);
        db_worker_close(w);
        char q[240];
        log_q(q, sizeof q, j->why, strlen(j->why));
        if (!(reused && db_conn_lost(err))) {
            atomic_fetch_add(&d->errors, 1);
            log_warn("mysql_error", "reason=%s", q);
            return;
        }
        log_info("mysql_reconnect", "reason=%s", q);
    }
}

static void *db_worker_main(void *arg)
{
    db_worker *w = arg;
    db *d = w->d;
    mysql_thread_init();
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->jobs && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        db_job *j = d->jobs;
        d->jobs = j->next;
        if (!d->jobs)
            d->jobs_tail = &d->jobs;
        pthread_mutex_unlock(&d->mu);

        j->next = NULL;
        db_worker_run(w, j);

        pthread_mutex_lock(&d->mu);
        *d->done_tail = j;
        d->done_tail = &j->next;
        pthread_mutex_unlock(&d->mu);
        uv_async_send(&d->async);
    }
    db_worker_close(w);
    mysql_thread_end();
    return NULL;
}

/* --- loop side ----------------------------------------------------------------- */

static void db_job_finish(db_job *j)
{
    if (j->run) {
        j->done(j->ctx, j->ok, j->ok ? NULL : j->why);
        free(j);
        return;
    }
    j->fn(j->ctx, j->rows, j->n, j->cut, j->ok, j->ok ? NULL : j->why);
    for (size_t i = 0; i < j->n; i++)
        envelope_free(&j->rows[i]);
    free(j->rows);
    free(j);
}

static void db_on_async(uv_async_t *h)
{
    db *d = h->data;
    pthread_mutex_lock(&d->mu);
    db_job *j = d->done;
    d->done = NULL;
    d->done_tail = &d->done;
    pthread_mutex_unlock(&d->mu);
    while (j) {
        db_job *next = j->next;
        db_job_finish(j);
        j = next;
    }
}

static void db_on_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Free everything but the struct and its async handle. */
static void db_release(db *d)
{
    free(d->workers);
    free((char *)d->conn.host);
    free((char *)d->conn.user);
    free((char *)d->conn.password);
    free((char *)d->conn.database);
    free((char *)d->conn.tls_ca);
    free((char *)d->conn.tls_cert);
    free((char *)d->conn.tls_key);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
}

db *db_create(uv_loop_t *loop, const db_config *cfg)
{
    db *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->conn = cfg->conn;
    d->conn.host = xstrdup(cfg->conn.host);
    d->conn.user = xstrdup(cfg->conn.user);
    d->conn.password = xstrdup(cfg->conn.password);
    d->conn.database = xstrdup(cfg->conn.database);
    d->conn.tls_ca = xstrdup(cfg->conn.tls_ca ? cfg->conn.tls_ca : "");
    d->conn.tls_cert = xstrdup(cfg->conn.tls_cert ? cfg->conn.tls_cert : "");
    d->conn.tls_key = xstrdup(cfg->conn.tls_key ? cfg->conn.tls_key : "");
    d->jobs_tail = &d->jobs;
    d->done_tail = &d->done;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->nworkers = cfg->threads;
    d->workers = xcalloc((size_t)d->nworkers, sizeof *d->workers);
    if (uv_async_init(loop, &d->async, db_on_async) != 0) {
        log_error("db_create", "detail=\"uv_async_init failed\"");
        goto fail;
    }
    d->async.data = d;
    for (int i = 0; i < d->nworkers; i++) {
        d->workers[i].d = d;
        if (pthread_create(&d->workers[i].thread, NULL, db_worker_main, &d->workers[i]) != 0) {
            log_error("db_create", "detail=\"cannot start a MySQL thread\"");
            db_destroy(d);
            return NULL;
        }
        d->workers[i].started = true;
    }
    return d;

fail:
    db_release(d);
    free(d);
    return NULL;
}

void db_destroy(db *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nworkers; i++)
        if (d->workers[i].started)
            pthread_join(d->workers[i].thread, NULL);
    /* Finished first, then never taken: callbacks in the order they were asked. */
    db_on_async(&d->async);
    db_job *j = d->jobs;
    d->jobs = NULL;
    while (j) {
        db_job *next = j->next;
        snprintf(j->why, sizeof j->why, "shutting down");
        db_job_finish(j);
        j = next;
    }
    db_release(d);
    uv_close((uv_handle_t *)&d->async, db_on_closed);
}

/* Queue j for the workers. */
static void db_enqueue(db *d, db_job *j)
{
    pthread_mutex_lock(&d->mu);
    *d->jobs_tail = j;
    d->jobs_tail = &j->next;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void db_run(db *d, db_job_fn job, void *arg, db_done_fn done, void *ctx)
{
    db_job *j = xcalloc(1, sizeof *j + 1);
    j->run = job;
    j->arg = arg;
    j->done = done;
    j->ctx = ctx;
    db_enqueue(d, j);
}

void db_fetch(db *d, const db_query *q, db_fn fn, void *ctx)
{
    size_t rl = strlen(q->room);
    db_job *j = xcalloc(1, sizeof *j + rl + 1);
    memcpy(j->room, q->room, rl + 1);
    j->q = *q;
    j->q.room = j->room;
    j->fn = fn;
    j->ctx = ctx;
    db_enqueue(d, j);
}

uint64_t db_errors(const db *d)
{
    return atomic_load(&d->errors);
}
