/* config.h — lectern-storage's knobs.
 *
 * storage_config is a plain value filled by lib/cfg from the table in
 * config.c; every field is a knob listed, with its default and help text, in
 * config/lectern-storage.conf (which `lectern-storage --print-config`
 * regenerates; tests/storage/run.sh checks that the two are equal).
 */
#ifndef LECTERN_STORAGE_CONFIG_H
#define LECTERN_STORAGE_CONFIG_H

#include "cfg.h"

typedef struct storage_config {
    /* [amqp] */
    char *amqp_host;
    int   amqp_port;
    char *amqp_vhost;
    char *amqp_user;
    char *amqp_password;
    int   amqp_heartbeat_s;
    int   amqp_backoff_min_ms;
    int   amqp_backoff_max_ms;
    /* [storage] */
    char *queue;
    char *queue_type;          /* classic | quorum */
    int   prefetch;
    int   batch_max;
    int   batch_wait_ms;
    int   check_ms;
    int   shutdown_timeout_ms;
    int   poison_log_every;
    /* [mysql] */
    char *mysql_host;
    int   mysql_port;
    char *mysql_user;
    char *mysql_password;
    char *mysql_database;
    int   mysql_timeout_s;
    int   mysql_backoff_min_ms;
    int   mysql_backoff_max_ms;
    /* [http] */
    int   http_port;
    char *http_listen;
    /* [log] */
    char *log_level;
} storage_config;

extern const cfg_knob storage_knobs[];

/* What the knob table cannot check alone: the form of amqp.host
 * (lib/addrlist), backoff bounds. Returns 0 or -1 with the reason in err. */
int storage_config_check(const storage_config *c, char *err, size_t errlen);

/* The header printed at the top of the generated config file. */
extern const char storage_config_title[];

#endif
