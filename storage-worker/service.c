/* service.c — the lectern-storage process: loop, signals, HTTP, batcher.
 *
 * The main thread runs one libuv loop: SIGTERM/SIGINT handlers, the HTTP
 * side (httpd.c, libwebsockets on the loop), a uv_async_t through which the
 * batcher's thread says it has finished, and the shutdown timer. The
 * batcher's thread (batcher.c) does all the blocking work; the two share
 * nothing but the batcher's flags and the metrics' atomics.
 *
 * Shutdown. A signal asks the batcher to stop (no new deliveries; write,
 * commit and ack what it holds; close politely) and arms a timer of
 * storage.shutdown_timeout_ms. If the batcher has not finished by then it is
 * abandoned: its blocked calls are made to fail, nothing more is acked, and
 * RabbitMQ redelivers what it held. Should the thread still not end (stuck
 * in a connect that has no socket to shut down yet), the process exits 0
 * after SERVICE_GRACE_MS more without waiting for it. Once the batcher has
 * finished, the HTTP side closes, the handles close and the loop runs dry.
 * /readyz answers 503 from the first signal on.
 */
#include "service.h"

#include "buf.h"
#include "clock.h"
#include "httpd.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "version.h"
#include "batcher.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define SERVICE_GRACE_MS 2000

struct service {
    const storage_config *conf;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_async_t finished;         /* the batcher's thread ended */
    uv_timer_t deadline;
    httpd *http;
    batcher *batcher;
    metrics metrics;
    bool stopping, abandoned, done;
};

/* --- HTTP ------------------------------------------------------------------------------ */

static unsigned service_route(void *ctx, const char *path, buf *body, const char **ctype)
{
    service *s = ctx;
    if (!strcmp(path, "/healthz")) {
        *ctype = "application/json";
        buf_printf(body, "{\"status\":\"ok\",\"version\":\"%s\"}", LECTERN_VERSION);
        return 200;
    }
    if (!strcmp(path, "/readyz")) {
        const char *why = NULL;
        if (s->stopping)
            why = "shutting down";
        else if (atomic_load(&s->metrics.incompatible))
            why = "MySQL cannot hold the largest message (a column narrower than "
                  "lib/storelimits.h, or max_allowed_packet too small; see the "
                  "storage_incompatible log line): not consuming";
        else if (!atomic_load(&s->metrics.up_amqp))
            why = "not consuming the storage queue (RabbitMQ unavailable)";
        else if (!atomic_load(&s->metrics.up_mysql))
            why = "MySQL unavailable";
        *ctype = "application/json";
        if (why) {
            buf_printf(body, "{\"status\":\"unavailable\",\"reason\":\"%s\"}", why);
            return 503;
        }
        buf_printf(body, "{\"status\":\"ready\",\"queue\":\"%s\"}", s->conf->consumer.queue);
        return 200;
    }
    if (!strcmp(path, "/metrics")) {
        *ctype = "text/plain; version=0.0.4";
        metrics_render(&s->metrics, clock_wall_ms(), body);
        return 200;
    }
    *ctype = "application/json";
    buf_append_str(body, "{\"error\":\"no such resource (try /healthz, /readyz, /metrics)\"}");
    return 404;
}

/* --- shutdown ---------------------------------------------------------------------------- */

/* Runs on the batcher's thread, last thing. */
static void service_batcher_done(void *ctx)
{
    service *s = ctx;
    uv_async_send(&s->finished);
}

/* On the loop, once the batcher has ended (or never started): close
 * everything so that the loop runs dry. */
static void service_teardown(service *s)
{
    if (s->done)
        return;
    s->done = true;
    batcher_destroy(s->batcher);          /* the thread has ended: joins at once */
    s->batcher = NULL;
    uv_timer_stop(&s->deadline);
    uv_close((uv_handle_t *)&s->deadline, NULL);
    uv_close((uv_handle_t *)&s->finished, NULL);
    httpd_close(s->http);
    /* The handlers stay installed (a second signal must not kill the
     * process by default action) but no longer keep the loop alive. */
    uv_unref((uv_handle_t *)&s->sigterm);
    uv_unref((uv_handle_t *)&s->sigint);
}

static void service_on_finished(uv_async_t *h)
{
    service_teardown(h->data);
}

static void service_on_deadline(uv_timer_t *t)
{
    service *s = t->data;
    if (!s->abandoned) {
        s->abandoned = true;
        log_warn("shutdown_deadline", "timeout_ms=%d detail=\"giving up; unacked messages "
                 "will be delivered again\"", s->conf->shutdown_timeout_ms);
        batcher_abandon(s->batcher);
        uv_timer_start(&s->deadline, service_on_deadline, SERVICE_GRACE_MS, 0);
        return;
    }
    log_error("exit_forced", "detail=\"the worker thread did not end; exiting without it\"");
    _exit(0);
}

static void service_begin_stop(service *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = true;
    log_info("shutdown", "reason=%s timeout_ms=%d", why, s->conf->shutdown_timeout_ms);
    batcher_stop(s->batcher);
    uv_timer_start(&s->deadline, service_on_deadline, (uint64_t)s->conf->shutdown_timeout_ms, 0);
}

static void service_on_signal(uv_signal_t *h, int signum)
{
    service_begin_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* --- creation -------------------------------------------------------------------------- */

service *service_create(const storage_config *conf, char *err, size_t errlen)
{
    service *s = xcalloc(1, sizeof *s);
    s->conf = conf;
    metrics_init(&s->metrics);
    if (uv_loop_init(&s->loop)) {
        snprintf(err, errlen, "cannot initialise the event loop");
        free(s);
        return NULL;
    }
    /* HTTP first: a failed start runs the loop, which must hold nothing else. */
    if (conf->http_port) {
        s->http = httpd_create(&s->loop, conf->http_port, conf->http_listen, service_route, s,
                               err, errlen);
        if (!s->http) {
            uv_loop_close(&s->loop);
            free(s);
            return NULL;
        }
    }
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigterm.data = s;
    uv_signal_init(&s->loop, &s->sigint);
    s->sigint.data = s;
    uv_timer_init(&s->loop, &s->deadline);
    s->deadline.data = s;
    uv_async_init(&s->loop, &s->finished, service_on_finished);
    s->finished.data = s;
    uv_signal_start(&s->sigterm, service_on_signal, SIGTERM);
    uv_signal_start(&s->sigint, service_on_signal, SIGINT);

    s->batcher = batcher_create(conf, &s->metrics, service_batcher_done, s, err, errlen);
    if (!s->batcher) {
        service_destroy(s);
        return NULL;
    }
    return s;
}

int service_run(service *s)
{
    log_info("started", "version=%s http_port=%d queue=%s amqp=%s:%d mysql=%s:%d/%s "
             "batch_max=%d prefetch=%d", LECTERN_VERSION, s->http ? httpd_port(s->http) : 0,
             s->conf->consumer.queue, s->conf->amqp_host, s->conf->amqp_port,
             s->conf->writer.conn.host, s->conf->writer.conn.port, s->conf->writer.conn.database,
             s->conf->writer.batch_max, s->conf->consumer.prefetch);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return 0;
}

static void service_on_stop_now(uv_timer_t *t)
{
    service *s = t->data;
    if (s->batcher)
        service_begin_stop(s, "exit");
    else
        service_teardown(s);
}

void service_destroy(service *s)
{
    if (!s)
        return;
    if (!s->done) {
        /* Not run to the end: stop the batcher, and take lws down inside the loop. */
        uv_timer_start(&s->deadline, service_on_stop_now, 0, 0);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    httpd_destroy(s->http);
    if (uv_loop_close(&s->loop))
        log_warn("loop_busy", "detail=\"handles still open at exit\"");
    free(s);
}
