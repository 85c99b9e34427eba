/* store.c — batches of messages into MySQL, idempotently (see store.h).
 *
 * Statements. The INSERT for k rows has k groups of 12 placeholders; it is
 * prepared the first time a batch of k rows comes and kept (stmts[k]) until
 * the connection closes. A steady stream uses a handful of sizes (full
 * batches and the odd partial one).
 *
 * Errors. An error that names the data (too long, bad value, NULL where not
 * allowed) is STORE_EDATA: the caller retries row by row to find the row
 * MySQL refuses. Everything else — lost connection, deadlock, lock wait,
 * read-only, unknown — is STORE_ERETRY: the transaction is rolled back, the
 * connection closed, and the caller retries the same batch later. Nothing
 * is ever acknowledged to RabbitMQ before COMMIT returned.
 *
 * Migrations. On the first successful connect: create schema_migrations,
 * take the named lock lectern_schema (several workers may start together),
 * apply every embedded migration above the recorded version, record it,
 * release the lock. DDL is constant text from the binary.
 */
#include "store.h"

#include "log.h"
#include "mem.h"
#include "schema.h"

#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_COLS 12

static const char store_insert_head[] =
    "INSERT INTO messages (room, id_ms, id_n, epoch, seq, ts_ms, sender, sender_name,"
    " content_type, headers, body, origin) VALUES ";
static const char store_insert_row[] = "(?,?,?,?,?,?,?,?,?,?,?,?)";
static const char store_insert_tail[] = " ON DUPLICATE KEY UPDATE id_ms = id_ms";

struct store {
    char *host, *user, *password, *database;
    int port;
    unsigned timeout_s;
    int batch_max;
    MYSQL *conn;
    MYSQL_STMT **stmts;          /* [1..batch_max], prepared lazily */
    bool migrated;
};

store *store_create(const store_config *cfg)
{
    store *s = xcalloc(1, sizeof *s);
    s->host = xstrdup(cfg->host);
    s->user = xstrdup(cfg->user);
    s->password = xstrdup(cfg->password);
    s->database = xstrdup(cfg->database);
    s->port = cfg->port;
    s->timeout_s = cfg->timeout_s > 0 ? (unsigned)cfg->timeout_s : 10;
    s->batch_max = cfg->batch_max > 0 ? cfg->batch_max : 1;
    s->stmts = xcalloc((size_t)s->batch_max + 1, sizeof *s->stmts);
    return s;
}

void store_disconnect(store *s)
{
    for (int i = 0; i <= s->batch_max; i++) {
        if (s->stmts[i])
            mysql_stmt_close(s->stmts[i]);
        s->stmts[i] = NULL;
    }
    if (s->conn)
        mysql_close(s->conn);
    s->conn = NULL;
}

void store_destroy(store *s)
{
    if (!s)
        return;
    store_disconnect(s);
    free(s->stmts);
    free(s->host);
    free(s->user);
    free(s->password);
    free(s->database);
    free(s);
}

bool store_connected(const store *s)
{
    return s->conn != NULL;
}

/* Run constant SQL; discard any result. */
static int store_exec(store *s, const char *sql, size_t len)
{
    if (mysql_real_query(s->conn, sql, (unsigned long)len) != 0)
        return -1;
    do {
        MYSQL_RES *res = mysql_store_result(s->conn);
        if (res)
            mysql_free_result(res);
    } while (mysql_next_result(s->conn) == 0);
    return 0;
}

/* The first column of the first row of constant SQL, as a number (-1: error). */
static long long store_scalar(store *s, const char *sql)
{
    if (mysql_query(s->conn, sql) != 0)
        return -1;
    MYSQL_RES *res = mysql_store_result(s->conn);
    if (!res)
        return -1;
    MYSQL_ROW row = mysql_fetch_row(res);
    long long v = row && row[0] ? atoll(row[0]) : -1;
    mysql_free_result(res);
    return v;
}

static int store_record(store *s, int version, const char *name)
{
    static const char sql[] = "INSERT INTO schema_migrations (version, name) VALUES (?, ?)";
    MYSQL_STMT *st = mysql_stmt_init(s->conn);
    if (!st)
        return -1;
    long long v = version;
    unsigned long nlen = strlen(name);
    MYSQL_BIND b[2];
    memset(b, 0, sizeof b);
    b[0].buffer_type = MYSQL_TYPE_LONGLONG;
    b[0].buffer = &v;
    b[1].buffer_type = MYSQL_TYPE_STRING;
    b[1].buffer = (void *)(uintptr_t)name;
    b[1].buffer_length = nlen;
    b[1].length = &nlen;
    int rc = (mysql_stmt_prepare(st, sql, sizeof sql - 1) == 0 &&
              mysql_stmt_bind_param(st, b) == 0 && mysql_stmt_execute(st) == 0) ? 0 : -1;
    mysql_stmt_close(st);
    return rc;
}

/* Apply one migration: its statements end with ";\n". */
static int store_apply(store *s, const schema_migration *m)
{
    const char *p = m->sql;
    while (*p) {
        const char *end = strstr(p, ";\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool blank = true;
        for (size_t i = 0; i < len; i++)
            if (p[i] != ' ' && p[i] != '\n' && p[i] != '\t' && p[i] != '\r')
                blank = false;
        if (!blank && store_exec(s, p, len) < 0)
            return -1;
        p += len + (end ? 2 : 0);
    }
    if (store_record(s, m->version, m->name) < 0 || mysql_commit(s->conn) != 0)
        return -1;
    log_info("schema_migrated", "version=%d name=%s", m->version, m->name);
    return 0;
}

static int store_migrate(store *s, char *why, size_t whylen)
{
    static const char create[] =
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(255) NOT NULL,"
        " applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB";
    if (store_exec(s, create, sizeof create - 1) < 0)
        goto fail;
    if (store_scalar(s, "SELECT GET_LOCK('lectern_schema', 30)") != 1) {
        snprintf(why, whylen, "migrate: could not take the schema lock");
        return -1;
    }
    long long have = store_scalar(s, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    int rc = have < 0 ? -1 : 0;
    for (const schema_migration *m = schema_migrations; rc == 0 && m->sql; m++)
        if (m->version > have)
            rc = store_apply(s, m);
    if (rc < 0)
        snprintf(why, whylen, "migrate: %s", mysql_error(s->conn));
    store_scalar(s, "SELECT RELEASE_LOCK('lectern_schema')");
    mysql_commit(s->conn);
    return rc;

fail:
    snprintf(why, whylen, "migrate: %s", mysql_error(s->conn));
    return -1;
}

int store_connect(store *s, char *why, size_t whylen)
{
    store_disconnect(s);
    s->conn = mysql_init(NULL);
    if (!s->conn) {
        snprintf(why, whylen, "mysql_init failed");
        return -1;
    }
    mysql_options(s->conn, MYSQL_OPT_CONNECT_TIMEOUT, &s->timeout_s);
    mysql_options(s->conn, MYSQL_OPT_READ_TIMEOUT, &s->timeout_s);
    mysql_options(s->conn, MYSQL_OPT_WRITE_TIMEOUT, &s->timeout_s);
    if (!mysql_real_connect(s->conn, s->host, s->user, s->password, s->database,
                            (unsigned)s->port, NULL, 0)) {
        snprintf(why, whylen, "connect: %s", mysql_error(s->conn));
        goto fail;
    }
    if (mysql_autocommit(s->conn, 0) != 0) {
        snprintf(why, whylen, "autocommit: %s", mysql_error(s->conn));
        goto fail;
    }
    if (!s->migrated) {
        if (store_migrate(s, why, whylen) < 0)
            goto fail;
        s->migrated = true;
    }
    return 0;

fail:
    store_disconnect(s);
    return -1;
}

static MYSQL_STMT *store_stmt(store *s, size_t n)
{
    if (s->stmts[n])
        return s->stmts[n];
    size_t cap = sizeof store_insert_head + n * (sizeof store_insert_row + 1) +
                 sizeof store_insert_tail;
    char *sql = xmalloc(cap), *p = sql;
    memcpy(p, store_insert_head, sizeof store_insert_head - 1);
    p += sizeof store_insert_head - 1;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, store_insert_row, sizeof store_insert_row - 1);
        p += sizeof store_insert_row - 1;
    }
    memcpy(p, store_insert_tail, sizeof store_insert_tail);
    p += sizeof store_insert_tail - 1;
    MYSQL_STMT *st = mysql_stmt_init(s->conn);
    if (st && mysql_stmt_prepare(st, sql, (unsigned long)(p - sql)) != 0) {
        mysql_stmt_close(st);
        st = NULL;
    }
    free(sql);
    s->stmts[n] = st;
    return st;
}

static void store_bind_bytes(MYSQL_BIND *b, unsigned long *len, const void *p, size_t n,
                             enum enum_field_types type, my_bool *is_null)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = type;
    b->buffer = (void *)(uintptr_t)(p ? p : "");
    *len = (unsigned long)n;
    b->buffer_length = *len;
    b->length = len;
    b->is_null = is_null;
}

static void store_bind_u64(MYSQL_BIND *b, uint64_t *v)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
    b->is_unsigned = 1;
}

/* Is this error about the data (retrying the same rows cannot help)? */
static bool store_data_error(unsigned e)
{
    switch (e) {
    case ER_DATA_TOO_LONG:
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
    case ER_BAD_NULL_ERROR:
    case ER_WARN_DATA_OUT_OF_RANGE:
    case ER_TRUNCATED_WRONG_VALUE:
        return true;
    default:
        return false;
    }
}

int store_insert(store *s, const envelope *const *envs, const msgid *ids, size_t n,
                 uint64_t *inserted, char *why, size_t whylen)
{
    *inserted = 0;
    if (!s->conn) {
        snprintf(why, whylen, "not connected");
        return STORE_ERETRY;
    }
    if (n == 0)
        return STORE_OK;
    if (n > (size_t)s->batch_max) {
        snprintf(why, whylen, "batch of %zu rows over batch_max", n);
        return STORE_EDATA;
    }
    MYSQL_STMT *st = store_stmt(s, n);
    if (!st) {
        snprintf(why, whylen, "prepare: %s", mysql_error(s->conn));
        store_disconnect(s);
        return STORE_ERETRY;
    }
    MYSQL_BIND *b = xcalloc(n * STORE_COLS, sizeof *b);
    unsigned long *lens = xcalloc(n * STORE_COLS, sizeof *lens);
    uint64_t *nums = xcalloc(n * 5, sizeof *nums);
    my_bool *nulls = xcalloc(n * 2, sizeof *nulls);
    for (size_t i = 0; i < n; i++) {
        const envelope *e = envs[i];
        MYSQL_BIND *r = b + i * STORE_COLS;
        unsigned long *l = lens + i * STORE_COLS;
        uint64_t *v = nums + i * 5;
        my_bool *nl = nulls + i * 2;
        v[0] = ids[i].ms;
        v[1] = ids[i].n;
        v[2] = e->epoch;
        v[3] = e->seq;
        v[4] = e->ts_ms;
        nl[0] = e->content_type == NULL;
        nl[1] = e->headers == NULL || e->headers_len == 0;
        store_bind_bytes(&r[0], &l[0], e->room, strlen(e->room), MYSQL_TYPE_STRING, NULL);
        for (int k = 0; k < 5; k++)
            store_bind_u64(&r[1 + k], &v[k]);
        store_bind_bytes(&r[6], &l[6], e->sender, e->sender ? strlen(e->sender) : 0,
                         MYSQL_TYPE_STRING, NULL);
        store_bind_bytes(&r[7], &l[7], e->sender_name,
                         e->sender_name ? strlen(e->sender_name) : 0, MYSQL_TYPE_STRING, NULL);
        store_bind_bytes(&r[8], &l[8], e->content_type,
                         e->content_type ? strlen(e->content_type) : 0, MYSQL_TYPE_STRING, &nl[0]);
        store_bind_bytes(&r[9], &l[9], e->headers, e->headers_len, MYSQL_TYPE_BLOB, &nl[1]);
        store_bind_bytes(&r[10], &l[10], e->body, e->body_len, MYSQL_TYPE_BLOB, NULL);
        store_bind_bytes(&r[11], &l[11], e->origin, e->origin ? strlen(e->origin) : 0,
                         MYSQL_TYPE_STRING, NULL);
    }
    int rc = STORE_OK;
    if (mysql_stmt_bind_param(st, b) != 0 || mysql_stmt_execute(st) != 0) {
        unsigned e = mysql_stmt_errno(st);
        snprintf(why, whylen, "insert: %u %s", e, mysql_stmt_error(st));
        rc = store_data_error(e) ? STORE_EDATA : STORE_ERETRY;
    } else {
        my_ulonglong affected = mysql_stmt_affected_rows(st);
        if (mysql_commit(s->conn) != 0) {
            snprintf(why, whylen, "commit: %s", mysql_error(s->conn));
            rc = STORE_ERETRY;
        } else {
            /* ON DUPLICATE KEY UPDATE that changes nothing counts 0 per row */
            *inserted = affected == (my_ulonglong)-1 ? 0 : (uint64_t)affected;
        }
    }
    free(b);
    free(lens);
    free(nums);
    free(nulls);
    if (rc != STORE_OK) {
        if (s->conn)
            mysql_rollback(s->conn);
        if (rc == STORE_ERETRY)
            store_disconnect(s);
    }
    return rc;
}
