/* config.h — lectern-storage's knobs.
 *
 * storage_config is a plain value filled by lib/cfg from the table in
 * config.c; every field is a knob listed, with its default and help text, in
 * config/lectern-storage.conf (which `lectern-storage --print-config`
 * regenerates; tests/storage/run.sh checks that the two are equal).
 * The consumer's and the writer's configs are embedded, and their knob rows
 * point straight into them: the knob table is the only place defaults are
 * written.
 */
#ifndef LECTERN_STORAGE_CONFIG_H
#define LECTERN_STORAGE_CONFIG_H

#include "cfg.h"
#include "consumer.h"
#include "dbwriter.h"

typedef struct storage_config {
    /* [amqp] */
    char *amqp_host;
    int   amqp_port;
    int   amqp_backoff_min_ms;
    int   amqp_backoff_max_ms;
    /* The consumer's knobs: amqp.vhost, user, password, heartbeat_s and
     * storage.queue, queue_type, prefetch (its name is set at start). */
    consumer_config consumer;
    /* [storage] */
    int   batch_wait_ms;
    int   check_ms;
    int   shutdown_timeout_ms;
    int   poison_log_every;
    /* The writer's knobs: [mysql] and storage.batch_max. */
    dbwriter_config writer;
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
