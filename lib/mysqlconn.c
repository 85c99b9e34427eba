/* mysqlconn.c — making a connection to the message store (see mysqlconn.h).
 *
 * A connection is made with the three timeouts set before connecting, so
 * that a dead or frozen server costs a caller at most timeout_s per call
 * instead of the kernel's TCP timeouts. Nothing else is set here: each user
 * sets up its session after connecting (the writer makes it strict and turns
 * autocommit off; the history pool reads with autocommit on), and reconnects
 * on its own terms (never libmariadb's auto-reconnect, which would lose that
 * session state and prepared statements behind the caller's back).
 */
#include "mysqlconn.h"

#include <stdio.h>

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
