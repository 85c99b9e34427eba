/* mysqlconn.h — one connection to the message store (MySQL/MariaDB), made
 * the same way by every Lectern program.
 *
 * Both programs reach the same database with the same [mysql] knobs: the
 * server's history pool reads it (server/db.c), lectern-storage writes it
 * (storage-worker/dbwriter.c). mysqlconn_config is those knobs' values, and
 * MYSQLCONN_KNOBS declares their rows in a program's knob table (lib/cfg), so
 * names, defaults and bounds are written once; the help of mysql.host and
 * mysql.user says what each program does with the database, so the program
 * gives it. mysqlconn_open makes a connection: TCP, with mysql.timeout_s for
 * connect, read and write, so no call blocks longer than that; with
 * mysql.tls, over TLS only (MYSQLCONN_KNOBS_TLS), never falling back to
 * plain text.
 *
 * libmariadb blocks: these calls belong on threads of their own, never on an
 * event loop. mysqlconn_library_init must run before any thread starts.
 */
#ifndef LECTERN_MYSQLCONN_H
#define LECTERN_MYSQLCONN_H

#include "cfg.h"

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct mysqlconn_config {
    const char *host;
    int         port;
    const char *user;
    const char *password;
    const char *database;
    int         timeout_s;       /* connect, read and write timeout of one call */
    bool        tls;             /* TLS only, the server's certificate verified */
    const char *tls_ca;          /* PEM CA file; "" = the system's trusted CAs */
    const char *tls_cert;        /* PEM client certificate; "" = none */
    const char *tls_key;         /* its PEM private key */
} mysqlconn_config;

/* The knob rows of mysqlconn_config at offset `base` of a program's config
 * struct: mysql.host .. mysql.database (MYSQLCONN_KNOBS) and mysql.timeout_s
 * (MYSQLCONN_KNOB_TIMEOUT, apart so that a program can list knobs of its own
 * between them). host_help and user_help are the program's help lines. */
#define MYSQLCONN_KNOBS(base, host_help, user_help)                                             \
    { "mysql.host", CFG_STR, (base) + offsetof(mysqlconn_config, host), "127.0.0.1", 0, 0,      \
      NULL, host_help },                                                                        \
    { "mysql.port", CFG_INT, (base) + offsetof(mysqlconn_config, port), "3390", 1, 65535, NULL, \
      "MySQL port (the default is the one scripts/services runs MariaDB on)." },               \
    { "mysql.user", CFG_STR, (base) + offsetof(mysqlconn_config, user), "lectern", 0, 0, NULL,  \
      user_help },                                                                              \
    { "mysql.password", CFG_STR, (base) + offsetof(mysqlconn_config, password), "lectern", 0,   \
      0, NULL, "MySQL password." },                                                             \
    { "mysql.database", CFG_STR, (base) + offsetof(mysqlconn_config, database), "lectern", 0,   \
      0, NULL, "MySQL database." }
#define MYSQLCONN_KNOB_TIMEOUT(base)                                                            \
    { "mysql.timeout_s", CFG_INT, (base) + offsetof(mysqlconn_config, timeout_s), "5", 1, 3600, \
      NULL, "Connect, read and write timeout of one MySQL call." }

/* The TLS knob rows (mysql.tls, tls_ca, tls_cert, tls_key), the same in
 * every program. */
#define MYSQLCONN_KNOBS_TLS(base)                                                                \
    { "mysql.tls", CFG_BOOL, (base) + offsetof(mysqlconn_config, tls), "false", 0, 0, NULL,     \
      "Connect to MySQL over TLS, and only so (a server without TLS is refused,\n"             \
      "never used in plain text): its certificate must chain to mysql.tls_ca and\n"            \
      "name mysql.host (a DNS name or IP address in its subjectAltName); TLS 1.2\n"            \
      "or later. A connection that fails the check is logged (mysql_down) and\n"               \
      "retried like any other failure." },                                                      \
    { "mysql.tls_ca", CFG_STR, (base) + offsetof(mysqlconn_config, tls_ca), "", 0, 0, NULL,     \
      "PEM file of the CA certificate(s) MySQL's certificate must chain to (with\n"            \
      "mysql.tls). Empty: the system's trusted CAs." },                                         \
    { "mysql.tls_cert", CFG_STR, (base) + offsetof(mysqlconn_config, tls_cert), "", 0, 0, NULL, \
      "PEM client certificate sent to MySQL (for users created REQUIRE X509).\n"               \
      "Empty: none." },                                                                         \
    { "mysql.tls_key", CFG_STR, (base) + offsetof(mysqlconn_config, tls_key), "", 0, 0, NULL,   \
      "PEM private key (unencrypted) of mysql.tls_cert." }

/* What the knob table cannot check: tls_cert and tls_key go together, and
 * the files named (with tls on) are readable now. Returns 0, or -1 with the
 * reason in err. */
int mysqlconn_check(const mysqlconn_config *c, char *err, size_t errlen);

/* Connect to c's database. c is borrowed for the call. Returns the
 * connection (the caller closes it with mysql_close), or NULL with why:
 * "connect: <errno> <message>" (with mysql.tls, a failed certificate check
 * among them). Blocks up to timeout_s. */
MYSQL *mysqlconn_open(const mysqlconn_config *c, char *why, size_t whylen);

/* The client library's process-wide set-up and tear-down (not thread-safe:
 * call init before starting any thread, end after the last has ended).
 * init returns 0, or -1 with the reason in why. The signatures are those of
 * cli_program's init and end (lib/cli.h). */
int mysqlconn_library_init(char *why, size_t whylen);
void mysqlconn_library_end(void);

#endif
