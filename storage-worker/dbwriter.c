/* dbwriter.c — writing messages into MySQL/MariaDB (see dbwriter.h).
 *
 * Connection. dbwriter_open connects (lib/mysqlconn: TCP, mysql.timeout_s
 * for connect, read and write), makes the session strict (STRICT_ALL_TABLES:
 * a value that does not fit its column is an error, never silently
 * truncated into a different room or sender), reads max_allowed_packet,
 * applies the schema migrations once per process, checks that the database
 * can hold every message the servers accept (below), and only then turns
 * autocommit off: every batch is one explicit transaction.
 *
 * Limits. The servers refuse, before any RECEIPT, a SEND whose row would
 * exceed lib/storelimits.h. At every connect (after the migrations) the
 * writer checks the other half of that promise: every column of the table
 * is a byte type at least as wide as the limit (information_schema), and
 * max_allowed_packet holds the largest row with what a statement adds
 * around it. A database that fails either makes dbwriter_open return
 * DBWRITER_INCOMPATIBLE, and the worker consumes nothing until it is fixed:
 * rows MySQL would refuse are never taken from the queue, so never dropped.
 *
 * Migrations. Under SELECT GET_LOCK('lectern_schema', 30), so that workers
 * starting together apply each migration once: create schema_migrations if
 * needed, read the highest version recorded, run every embedded migration
 * above it statement by statement (schema_next_statement) and record it
 * (a prepared INSERT). The lock is released whatever happens; a failure
 * leaves the writer closed and is retried with the next dbwriter_open. A
 * database newer than this binary (a higher version recorded) is accepted.
 *
 * Statements. All values are bound parameters: the SQL text of a k-row
 * INSERT ... VALUES (?,..),(?,..) ON DUPLICATE KEY UPDATE id_ms = id_ms
 * depends only on k. To keep the number of prepared statements small while
 * writing any batch with few round trips, only these sizes are used:
 * batch_max itself, and every power of two below it. A batch is cut into
 * chunks greedily, largest size first, each also small enough for
 * max_allowed_packet (a row that alone is too large is rejected). A
 * statement is prepared the first time its size is needed on a connection
 * and kept until the connection closes; so a full batch is one statement,
 * and any other at most log2(batch_max) + 1.
 *
 * Counting. Without CLIENT_FOUND_ROWS, an ODKU that changes nothing reports
 * 0 affected rows and an insert 1: a chunk's affected-row count is the number
 * of new rows, and the rest were duplicates.
 *
 * Errors. A data error (the row's own fault: too long, out of range, bad
 * NULL, a constraint) in a chunk rolls back and writes the rows one by one,
 * marking each that fails with a data error; InnoDB undoes only the failed
 * statement, so the others commit together. Any other error, including
 * deadlock (1213) and lock wait timeout (1205) and every client-side error
 * (CR_*, the connection), rolls back, closes the connection and fails the
 * write, which the caller retries after reconnecting: no row is ever
 * dropped for a reason that is not its own.
 */
#include "dbwriter.h"

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "schema.h"
#include "storelimits.h"

#include <mysql.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DBWRITER_COLS          12
#define DBWRITER_PARAM_COST    16      /* bytes per parameter beyond its value */
#define DBWRITER_PACKET_SLACK  4096    /* headroom under max_allowed_packet */
/* The largest row the servers accept, as dbwriter_row_size counts it. */
#define DBWRITER_ROW_BYTES_MAX ((size_t)STORELIMITS_ROW_MAX + DBWRITER_COLS * DBWRITER_PARAM_COST)

static const char dbwriter_insert_head[] =
    "INSERT INTO messages (room, id_ms, id_n, epoch, seq, ts_ms, sender, sender_name,"
    " content_type, headers, body, origin) VALUES ";
static const char dbwriter_insert_row[] = "(?,?,?,?,?,?,?,?,?,?,?,?)";
static const char dbwriter_insert_tail[] = " ON DUPLICATE KEY UPDATE id_ms = id_ms";

struct dbwriter {
    dbwriter_config cfg;
    MYSQL *conn;
    bool migrated;               /* once per process */
    size_t packet_max;           /* most bytes of one statement's parameters */
    size_t nsizes;
    size_t *sizes;               /* statement sizes, descending, ending with 1 */
    MYSQL_STMT **stmts;          /* parallel to sizes; NULL until needed */
    MYSQL_BIND *bind;            /* DBWRITER_COLS * batch_max */
    size_t *row_bytes;           /* batch_max */
    pthread_mutex_t mu;          /* guards fd and interrupted */
    int fd;
    bool interrupted;
};

dbwriter *dbwriter_create(const dbwriter_config *cfg)
{
    dbwriter *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    size_t max = (size_t)s->cfg.batch_max;
    s->sizes = xcalloc(66, sizeof *s->sizes);
    s->sizes[s->nsizes++] = max;
    size_t p = 1;
    while (p * 2 < max)
        p *= 2;
    for (; p >= 1 && p < max; p /= 2)
        s->sizes[s->nsizes++] = p;
    s->stmts = xcalloc(s->nsizes, sizeof *s->stmts);
    s->bind = xcalloc(DBWRITER_COLS * max, sizeof *s->bind);
    s->row_bytes = xcalloc(max, sizeof *s->row_bytes);
    s->fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void dbwriter_close(dbwriter *s)
{
    for (size_t i = 0; i < s->nsizes; i++) {
        if (s->stmts[i])
            mysql_stmt_close(s->stmts[i]);
        s->stmts[i] = NULL;
    }
    if (!s->conn)
        return;
    pthread_mutex_lock(&s->mu);
    s->fd = -1;
    pthread_mutex_unlock(&s->mu);
    mysql_close(s->conn);
    s->conn = NULL;
}

void dbwriter_destroy(dbwriter *s)
{
    if (!s)
        return;
    dbwriter_close(s);
    pthread_mutex_destroy(&s->mu);
    free(s->sizes);
    free(s->stmts);
    free(s->bind);
    free(s->row_bytes);
    free(s);
}

void dbwriter_interrupt(dbwriter *s)
{
    pthread_mutex_lock(&s->mu);
    s->interrupted = true;
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
}

bool dbwriter_is_open(const dbwriter *s)
{
    return s->conn != NULL;
}

/* --- plain queries (session setup, migrations) ------------------------------------- */

/* Run one statement, discarding any result. Returns 0 or -1 with why. */
static int dbwriter_exec(dbwriter *s, const char *sql, size_t len, const char *what, char *why,
                         size_t whylen)
{
    if (mysql_real_query(s->conn, sql, (unsigned long)len)) {
        snprintf(why, whylen, "%s: %u %s", what, mysql_errno(s->conn), mysql_error(s->conn));
        return -1;
    }
    MYSQL_RES *r = mysql_store_result(s->conn);
    if (r)
        mysql_free_result(r);
    else if (mysql_field_count(s->conn)) {
        snprintf(why, whylen, "%s: %u %s", what, mysql_errno(s->conn), mysql_error(s->conn));
        return -1;
    }
    return 0;
}

/* Run a query whose answer is one integer (SQL NULL is an error). */
static int dbwriter_query_int(dbwriter *s, const char *sql, long long *out, const char *what,
                              char *why, size_t whylen)
{
    MYSQL_RES *r = NULL;
    int rc = -1;
    if (mysql_real_query(s->conn, sql, (unsigned long)strlen(sql)) ||
        !(r = mysql_store_result(s->conn))) {
        snprintf(why, whylen, "%s: %u %s", what, mysql_errno(s->conn), mysql_error(s->conn));
        goto fail;
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    if (!row || !row[0]) {
        snprintf(why, whylen, "%s: no value", what);
        goto fail;
    }
    *out = strtoll(row[0], NULL, 10);
    rc = 0;
fail:
    if (r)
        mysql_free_result(r);
    return rc;
}

/* Record migration m as applied (a prepared INSERT). */
static int dbwriter_record_migration(dbwriter *s, const schema_migration *m, char *why,
                                     size_t whylen)
{
    static const char sql[] = "INSERT INTO schema_migrations (version, name) VALUES (?, ?)";
    int rc = -1;
    MYSQL_STMT *st = mysql_stmt_init(s->conn);
    MYSQL_BIND b[2];
    int version = m->version;

    if (!st) {
        snprintf(why, whylen, "record %s: out of memory", m->name);
        goto fail;
    }
    memset(b, 0, sizeof b);
    b[0].buffer_type = MYSQL_TYPE_LONG;
    b[0].buffer = &version;
    b[1].buffer_type = MYSQL_TYPE_STRING;
    b[1].buffer = (void *)m->name;
    b[1].buffer_length = strlen(m->name);
    if (mysql_stmt_prepare(st, sql, sizeof sql - 1) || mysql_stmt_bind_param(st, b) ||
        mysql_stmt_execute(st)) {
        snprintf(why, whylen, "record %s: %u %s", m->name, mysql_stmt_errno(st),
                 mysql_stmt_error(st));
        goto fail;
    }
    rc = 0;
fail:
    if (st)
        mysql_stmt_close(st);
    return rc;
}

static int dbwriter_apply(dbwriter *s, const schema_migration *m, char *why, size_t whylen)
{
    const char *text = m->sql, *stmt;
    size_t len;
    int n = 0;
    while ((len = schema_next_statement(&text, &stmt)) > 0) {
        char what[300];
        snprintf(what, sizeof what, "%s statement %d", m->name, ++n);
        if (dbwriter_exec(s, stmt, len, what, why, whylen) < 0)
            return -1;
    }
    if (dbwriter_record_migration(s, m, why, whylen) < 0)
        return -1;
    log_info("schema_migrated", "version=%d name=%s statements=%d", m->version, m->name, n);
    return 0;
}

static int dbwriter_migrate(dbwriter *s, char *why, size_t whylen)
{
    static const char create[] =
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(255) NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
        ") ENGINE=InnoDB";
    long long got = 0, have = 0;
    bool locked = false;
    int rc = -1;

    if (dbwriter_query_int(s, "SELECT GET_LOCK('lectern_schema', 30)", &got, "GET_LOCK", why,
                           whylen) < 0)
        goto fail;
    if (got != 1) {
        snprintf(why, whylen, "schema lock 'lectern_schema' still held by another worker after 30 s");
        goto fail;
    }
    locked = true;
    if (dbwriter_exec(s, create, sizeof create - 1, "create schema_migrations", why, whylen) < 0 ||
        dbwriter_query_int(s, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &have,
                           "read schema version", why, whylen) < 0)
        goto fail;
    int latest = 0;
    for (const schema_migration *m = schema_migrations; m->version; m++) {
        latest = m->version;
        if (m->version > have && dbwriter_apply(s, m, why, whylen) < 0)
            goto fail;
    }
    if (have > latest)
        log_warn("schema_newer", "database_version=%lld known=%d", have, latest);
    else
        log_info("schema_current", "version=%d", latest);
    rc = 0;
fail:
    if (locked) {
        char ignored[64];
        long long r;
        dbwriter_query_int(s, "SELECT RELEASE_LOCK('lectern_schema')", &r, "RELEASE_LOCK", ignored,
                           sizeof ignored);
    }
    return rc;
}

/* --- limits ----------------------------------------------------------------------------- */

/* Variable-length byte types: a text type could refuse bytes for their
 * encoding, and BINARY(n) would pad them with NULs. */
static bool dbwriter_byte_type(const char *t)
{
    static const char *const ok[] = { "varbinary", "tinyblob", "blob", "mediumblob", "longblob" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(t, ok[i]))
            return true;
    return false;
}

/* Does one column of information_schema hold field f? Returns 0, or -1
 * with why. */
static int dbwriter_check_column(storelimits_field f, const char *type, const char *octets,
                                 char *why, size_t whylen)
{
    const storelimits_limit *l = &storelimits_table[f];
    unsigned long long width = octets ? strtoull(octets, NULL, 10) : 0;
    if (!type || !dbwriter_byte_type(type)) {
        snprintf(why, whylen, "column messages.%s is %s, not VARBINARY or a BLOB type",
                 l->column, type ? type : "NULL");
        return -1;
    }
    if (width < l->max) {
        snprintf(why, whylen,
                 "column messages.%s holds %llu bytes, lib/storelimits.h needs %zu "
                 "(servers accept that much: widen the column)", l->column, width, l->max);
        return -1;
    }
    return 0;
}

/* Can this database hold every message the servers accept? Returns 0, or
 * -1 with why (the caller decides whether it is a query failure: *bad is
 * set when the database answered and is too small). */
static int dbwriter_check_limits(dbwriter *s, long long packet, bool *bad, char *why, size_t whylen)
{
    static const char sql[] =
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'messages'";
    MYSQL_RES *r = NULL;
    bool seen[STORELIMITS_NFIELDS] = { false };
    int rc = -1;

    *bad = false;
    if (s->packet_max < DBWRITER_ROW_BYTES_MAX) {
        *bad = true;
        snprintf(why, whylen,
                 "max_allowed_packet=%lld cannot hold the largest message (%d bytes) in one "
                 "statement: it needs at least %zu (SET GLOBAL max_allowed_packet, and the "
                 "server's configuration file)", packet, STORELIMITS_ROW_MAX,
                 DBWRITER_ROW_BYTES_MAX + DBWRITER_PACKET_SLACK);
        return -1;
    }
    if (mysql_real_query(s->conn, sql, sizeof sql - 1) || !(r = mysql_store_result(s->conn))) {
        snprintf(why, whylen, "read the columns of messages: %u %s", mysql_errno(s->conn),
                 mysql_error(s->conn));
        goto fail;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r))) {
        for (int f = 0; f < STORELIMITS_NFIELDS; f++) {
            if (!row[0] || strcasecmp(row[0], storelimits_table[f].column))
                continue;
            seen[f] = true;
            if (dbwriter_check_column((storelimits_field)f, row[1], row[2], why, whylen) < 0) {
                *bad = true;
                goto fail;
            }
        }
    }
    for (int f = 0; f < STORELIMITS_NFIELDS; f++) {
        if (!seen[f]) {
            *bad = true;
            snprintf(why, whylen, "table messages has no column %s", storelimits_table[f].column);
            goto fail;
        }
    }
    rc = 0;
fail:
    if (r)
        mysql_free_result(r);
    return rc;
}

int dbwriter_open(dbwriter *s, char *why, size_t whylen)
{
    bool incompatible = false;
    long long packet = 0;

    dbwriter_close(s);
    s->conn = mysqlconn_open(&s->cfg.conn, why, whylen);
    if (!s->conn)
        return -1;
    pthread_mutex_lock(&s->mu);
    bool interrupted = s->interrupted;
    if (!interrupted)
        s->fd = (int)mysql_get_socket(s->conn);
    pthread_mutex_unlock(&s->mu);
    if (interrupted) {
        snprintf(why, whylen, "interrupted");
        goto fail;
    }
    static const char mode[] = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'";
    if (dbwriter_exec(s, mode, sizeof mode - 1, "sql_mode", why, whylen) < 0 ||
        dbwriter_query_int(s, "SELECT @@max_allowed_packet", &packet, "max_allowed_packet", why,
                           whylen) < 0)
        goto fail;
    s->packet_max = packet > 2 * DBWRITER_PACKET_SLACK ? (size_t)packet - DBWRITER_PACKET_SLACK
                                                    : DBWRITER_PACKET_SLACK;
    if (!s->migrated) {
        if (dbwriter_migrate(s, why, whylen) < 0)
            goto fail;
        s->migrated = true;
    }
    if (dbwriter_check_limits(s, packet, &incompatible, why, whylen) < 0)
        goto fail;
    if (mysql_autocommit(s->conn, 0)) {
        snprintf(why, whylen, "autocommit: %u %s", mysql_errno(s->conn), mysql_error(s->conn));
        goto fail;
    }
    return 0;

fail:
    dbwriter_close(s);
    return incompatible ? DBWRITER_INCOMPATIBLE : -1;
}

int dbwriter_ping(dbwriter *s, char *why, size_t whylen)
{
    if (s->conn && mysql_ping(s->conn) == 0)
        return 0;
    snprintf(why, whylen, "ping: %s", s->conn ? mysql_error(s->conn) : "not connected");
    dbwriter_close(s);
    return -1;
}

/* --- batch insert -------------------------------------------------------------------- */

/* A data error: MySQL refused the row for its own content. */
static bool dbwriter_row_error(unsigned e)
{
    switch (e) {
    case ER_BAD_NULL_ERROR:                  /* 1048 */
    case ER_DUP_ENTRY:                       /* 1062 */
    case ER_WARN_NULL_TO_NOTNULL:            /* 1263 */
    case ER_WARN_DATA_OUT_OF_RANGE:          /* 1264 */
    case WARN_DATA_TRUNCATED:                /* 1265 */
    case ER_TRUNCATED_WRONG_VALUE:           /* 1292 */
    case ER_INVALID_CHARACTER_STRING:        /* 1300 */
    case ER_NO_DEFAULT_FOR_FIELD:            /* 1364 */
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: /* 1366 */
    case ER_ILLEGAL_VALUE_FOR_TYPE:          /* 1367 */
    case ER_DATA_TOO_LONG:                   /* 1406 */
    case ER_ROW_IS_REFERENCED_2:             /* 1451 */
    case ER_NO_REFERENCED_ROW_2:             /* 1452 */
    case ER_DATA_OUT_OF_RANGE:               /* 1690 */
    case ER_CONSTRAINT_FAILED:               /* 4025 */
        return true;
    default:
        return false;
    }
}

static size_t dbwriter_len(const char *p)
{
    return p ? strlen(p) : 0;
}

/* Bytes the row adds to an execute packet (an upper bound). */
static size_t dbwriter_row_size(const dbwriter_row *r)
{
    const envelope *e = r->env;
    return dbwriter_len(e->room) + dbwriter_len(e->sender) + dbwriter_len(e->sender_name) +
           dbwriter_len(e->content_type) + e->headers_len + e->body_len + dbwriter_len(e->origin) +
           DBWRITER_COLS * DBWRITER_PARAM_COST;
}

static void dbwriter_bind_bytes(MYSQL_BIND *b, const void *p, size_t len, bool null)
{
    static char empty[1];
    if (null) {
        b->buffer_type = MYSQL_TYPE_NULL;
        return;
    }
    /* BLOB parameters are taken as bytes: no character set conversion. */
    b->buffer_type = MYSQL_TYPE_BLOB;
    b->buffer = p ? (void *)p : empty;
    b->buffer_length = len;
}

static void dbwriter_bind_u64(MYSQL_BIND *b, const uint64_t *v)
{
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = (void *)v;
    b->is_unsigned = 1;
}

static void dbwriter_bind_row(MYSQL_BIND *b, dbwriter_row *r)
{
    const envelope *e = r->env;
    dbwriter_bind_bytes(&b[0], e->room, strlen(e->room), false);
    dbwriter_bind_u64(&b[1], &r->id.ms);
    dbwriter_bind_u64(&b[2], &r->id.n);
    dbwriter_bind_u64(&b[3], &e->epoch);
    dbwriter_bind_u64(&b[4], &e->seq);
    dbwriter_bind_u64(&b[5], &e->ts_ms);
    dbwriter_bind_bytes(&b[6], e->sender, dbwriter_len(e->sender), false);
    dbwriter_bind_bytes(&b[7], e->sender_name, dbwriter_len(e->sender_name), false);
    dbwriter_bind_bytes(&b[8], e->content_type, dbwriter_len(e->content_type), !e->content_type);
    dbwriter_bind_bytes(&b[9], e->headers, e->headers_len, !e->headers);
    dbwriter_bind_bytes(&b[10], e->body, e->body_len, false);
    dbwriter_bind_bytes(&b[11], e->origin, dbwriter_len(e->origin), false);
}

/* The prepared statement for sizes[slot] rows, prepared on first use. */
static MYSQL_STMT *dbwriter_stmt(dbwriter *s, size_t slot, unsigned *err, char *why, size_t whylen)
{
    if (s->stmts[slot])
        return s->stmts[slot];
    size_t k = s->sizes[slot];
    buf sql;
    buf_init(&sql);
    buf_append_str(&sql, dbwriter_insert_head);
    for (size_t i = 0; i < k; i++) {
        if (i)
            buf_append_char(&sql, ',');
        buf_append_str(&sql, dbwriter_insert_row);
    }
    buf_append_str(&sql, dbwriter_insert_tail);
    MYSQL_STMT *st = mysql_stmt_init(s->conn);
    if (!st || mysql_stmt_prepare(st, sql.data, (unsigned long)sql.len)) {
        *err = st ? mysql_stmt_errno(st) : mysql_errno(s->conn);
        snprintf(why, whylen, "prepare %zu-row insert: %u %s", k, *err,
                 st ? mysql_stmt_error(st) : mysql_error(s->conn));
        if (st)
            mysql_stmt_close(st);
        st = NULL;
    }
    buf_deinit(&sql);
    s->stmts[slot] = st;
    return st;
}

/* Insert rows[0..sizes[slot]) with one statement. */
static int dbwriter_exec_rows(dbwriter *s, size_t slot, dbwriter_row *rows, size_t *inserted,
                              unsigned *err, char *why, size_t whylen)
{
    MYSQL_STMT *st = dbwriter_stmt(s, slot, err, why, whylen);
    if (!st)
        return -1;
    size_t k = s->sizes[slot];
    memset(s->bind, 0, DBWRITER_COLS * k * sizeof *s->bind);
    for (size_t i = 0; i < k; i++)
        dbwriter_bind_row(&s->bind[i * DBWRITER_COLS], &rows[i]);
    if (mysql_stmt_bind_param(st, s->bind) || mysql_stmt_execute(st)) {
        *err = mysql_stmt_errno(st);
        snprintf(why, whylen, "insert %zu rows: %u %s", k, *err, mysql_stmt_error(st));
        return -1;
    }
    *inserted += (size_t)mysql_stmt_affected_rows(st);
    return 0;
}

/* Consecutive rows from i on that are not rejected (at most n - i). */
static size_t dbwriter_run(const dbwriter_row *rows, size_t i, size_t n)
{
    size_t j = i;
    while (j < n && !rows[j].rejected)
        j++;
    return j - i;
}

/* The largest statement size that fits `run` rows from i, within the packet. */
static size_t dbwriter_pick(const dbwriter *s, size_t i, size_t run)
{
    for (size_t slot = 0; slot < s->nsizes; slot++) {
        size_t k = s->sizes[slot], bytes = 0;
        if (k > run)
            continue;
        for (size_t j = i; j < i + k; j++)
            bytes += s->row_bytes[j];
        if (bytes <= s->packet_max)
            return slot;
    }
    return s->nsizes - 1;       /* size 1: every row left fits alone */
}

/* All rows, in as few statements as the sizes allow. */
static int dbwriter_insert_chunks(dbwriter *s, dbwriter_row *rows, size_t n, size_t *inserted,
                                  unsigned *err, char *why, size_t whylen)
{
    size_t i = 0;
    while (i < n) {
        size_t run = dbwriter_run(rows, i, n);
        if (!run) {
            i++;
            continue;
        }
        size_t slot = dbwriter_pick(s, i, run);
        if (dbwriter_exec_rows(s, slot, &rows[i], inserted, err, why, whylen) < 0)
            return -1;
        i += s->sizes[slot];
    }
    return 0;
}

/* Row by row; a row refused with a data error is marked and skipped. */
static int dbwriter_insert_each(dbwriter *s, dbwriter_row *rows, size_t n, size_t *inserted,
                                unsigned *err, char *why, size_t whylen)
{
    size_t one = s->nsizes - 1;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].rejected)
            continue;
        if (dbwriter_exec_rows(s, one, &rows[i], inserted, err, why, whylen) < 0) {
            if (!dbwriter_row_error(*err))
                return -1;
            rows[i].rejected = *err;
        }
    }
    return 0;
}

int dbwriter_write(dbwriter *s, dbwriter_row *rows, size_t n, dbwriter_result *res, char *why,
                   size_t whylen)
{
    uint64_t t0 = clock_us();
    unsigned err = 0;

    memset(res, 0, sizeof *res);
    if (!s->conn) {
        snprintf(why, whylen, "not connected");
        return -1;
    }
    if (n > (size_t)s->cfg.batch_max)
        n = (size_t)s->cfg.batch_max;       /* a caller bug; never more than the binds */
    for (size_t i = 0; i < n; i++) {
        rows[i].rejected = 0;
        s->row_bytes[i] = dbwriter_row_size(&rows[i]);
        if (s->row_bytes[i] > s->packet_max)
            rows[i].rejected = ER_NET_PACKET_TOO_LARGE;
    }
    int rc = dbwriter_insert_chunks(s, rows, n, &res->inserted, &err, why, whylen);
    if (rc < 0 && dbwriter_row_error(err)) {
        mysql_rollback(s->conn);
        res->inserted = 0;
        rc = dbwriter_insert_each(s, rows, n, &res->inserted, &err, why, whylen);
    }
    if (rc < 0)
        goto fail;
    if (mysql_commit(s->conn)) {
        snprintf(why, whylen, "commit: %u %s", mysql_errno(s->conn), mysql_error(s->conn));
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        res->rejected += rows[i].rejected != 0;
    res->duplicates = n - res->rejected - res->inserted;
    res->write_us = clock_us() - t0;
    return 0;

fail:
    mysql_rollback(s->conn);
    dbwriter_close(s);
    memset(res, 0, sizeof *res);
    return -1;
}
