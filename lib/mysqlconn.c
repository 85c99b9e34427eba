/* mysqlconn.c — making a connection to the message store (see mysqlconn.h).
 *
 * A connection is made with the three timeouts set before connecting, so
 * that a dead or frozen server costs a caller at most timeout_s per call
 * instead of the kernel's TCP timeouts. With tls, the connector is told to
 * use TLS or fail (MYSQL_OPT_SSL_ENFORCE: no silent plain-text fallback),
 * to verify the server's certificate against tls_ca (or the system's CAs)
 * and mysql.host (MYSQL_OPT_SSL_VERIFY_SERVER_CERT), and to speak TLS 1.2
 * or 1.3 only. The files are read at every connect, so renewed ones are
 * picked up by the next reconnect. Nothing else is set here: each user
 * sets up its session after connecting (the writer makes it strict and turns
 * autocommit off; the history pool reads with autocommit on), and reconnects
 * on its own terms (never libmariadb's auto-reconnect, which would lose that
 * session state and prepared statements behind the caller's back).
 */
#include "mysqlconn.h"

#include <stdio.h>
#include <unistd.h>

int mysqlconn_check(const mysqlconn_config *c, char *err, size_t errlen)
{
    if (!c->tls)
        return 0;
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        snprintf(err, errlen, "mysql.tls_cert and mysql.tls_key go together: set both or neither");
        return -1;
    }
    const char *files[3] = { c->tls_ca, c->tls_cert, c->tls_key };
    static const char *const names[3] = { "tls_ca", "tls_cert", "tls_key" };
    for (int i = 0; i < 3; i++) {
        if (files[i][0] && access(files[i], R_OK) != 0) {
            snprintf(err, errlen, "mysql.%s: cannot read '%s'", names[i], files[i]);
            return -1;
        }
    }
    return 0;
}

/* TLS only, verified (see the top of the file). */
static void mysqlconn_tls(MYSQL *conn, const mysqlconn_config *c)
{
    my_bool on = 1;
    mysql_options(conn, MYSQL_OPT_SSL_ENFORCE, &on);
    mysql_options(conn, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    mysql_options(conn, MARIADB_OPT_TLS_VERSION, "TLSv1.2,TLSv1.3");
    if (c->tls_ca[0])
        mysql_options(conn, MYSQL_OPT_SSL_CA, c->tls_ca);
    if (c->tls_cert[0]) {
        mysql_options(conn, MYSQL_OPT_SSL_CERT, c->tls_cert);
        mysql_options(conn, MYSQL_OPT_SSL_KEY, c->tls_key);
    }
}

MYSQL *mysqlconn_open(const mysqlconn_config *c, char *why, size_t whylen)
{
    MYSQL *conn = mysql_init(NULL);
    if (!conn) {
        snprintf(why, whylen, "mysql_init failed");
        return NULL;
    }
    unsigned t = (unsigned)c->timeout_s;
    mysql_options(conn, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(conn, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_options(conn, MYSQL_OPT_WRITE_TIMEOUT, &t);
    if (c->tls)
        mysqlconn_tls(conn, c);
    if (!mysql_real_connect(conn, c->host, c->user, c->password, c->database,
                            (unsigned)c->port, NULL, 0)) {
        snprintf(why, whylen, "connect: %u %s", mysql_errno(conn), mysql_error(conn));
        mysql_close(conn);
        return NULL;
    }
    return conn;
}

int mysqlconn_library_init(char *why, size_t whylen)
{
    if (mysql_library_init(0, NULL, NULL) == 0)
        return 0;
    snprintf(why, whylen, "cannot initialise the MySQL client library");
    return -1;
}

void mysqlconn_library_end(void)
{
    mysql_library_end();
}
