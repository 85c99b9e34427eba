/* http_history.c — the history route: bounded reads, one buffer, no copies.
 *
 * A page of limit=1000 messages of 256 KiB each is 256 MB, sixfold that as
 * JSON for bodies of control characters; built several times over (rows,
 * copies, a JSON tree, its text, a response copy) and many at once, it
 * would take gigabytes. So:
 *
 *   - a page ends at history.max_bytes of JSON as well as at `limit`
 *     (history.h: q.cost measures each message exactly as it will be
 *     written), so a response is at most max_bytes plus one message;
 *   - the reads beneath are bounded by bytes too (history.c, db.c and the
 *     log script of registry_log.c);
 *   - the page is measured, one buffer with LWS_PRE headroom is allocated,
 *     and the JSON is written into it straight from the messages
 *     (history_json.c); http.c sends it in chunks;
 *   - at most http.max_inflight history reads (HTTP requests and x-since
 *     replays together, server_history_gate) hold memory at once. A request
 *     that finds every slot taken (or replays already waiting in line for
 *     one) gets 503 with Retry-After at once, which costs nothing but the
 *     answer. A slot is held from the read to the last byte written (or the
 *     client's going).
 *
 * The query is parsed before a slot is taken, so bad requests never use
 * one.
 */
#include "http_history.h"

#include "gate.h"
#include "history.h"
#include "history_json.h"
#include "http_query.h"
#include "mem.h"

#include <libwebsockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request waiting for its page. */
typedef struct hh_request {
    http_exchange *e;
    char room[];              /* the room asked for (named by an empty page) */
} hh_request;

/* What a message costs in a page: its JSON and the comma before it. */
static size_t hh_cost(const envelope *m)
{
    return history_json_message(m, NULL) + 1;
}

typedef struct hh_fill {
    const char *room;
    const history_page *page;
} hh_fill;

static void hh_write_page(void *ctx, unsigned char *dst)
{
    hh_fill *f = ctx;
    history_json_page(f->room, f->page->msgs, f->page->n, f->page->more, (char *)dst);
}

static void hh_write_error(void *ctx, unsigned char *dst)
{
    history_json_error(ctx, (char *)dst);
}

static void hh_on_page(void *ctx, const history_page *page)
{
    hh_request *rq = ctx;
    if (page->status != HISTORY_OK) {
        const char *why = page->why ? page->why : "history unavailable";
        http_exchange_answer(rq->e, HTTP_STATUS_SERVICE_UNAVAILABLE, "application/json",
                    history_json_error(why, NULL), hh_write_error, (void *)(uintptr_t)why);
    } else {
        hh_fill f = { rq->room, page };
        size_t len = history_json_page(rq->room, page->msgs, page->n, page->more, NULL);
        http_exchange_answer(rq->e, HTTP_STATUS_OK, "application/json", len, hh_write_page, &f);
    }
    free(rq);
}

int http_history_request(const server_config *c, struct history *h, gate *g,
                         struct lws *wsi, http_exchange **x, const char *rname, size_t n)
{
    char frags[8][160];
    const char *args[8];
    size_t nargs = 0;
    /* lws keeps the query as URL-decoded "name=value" fragments. */
    for (int i = 0;; i++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0)
            break;
        if (nargs == 8)
            return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, "too many query parameters");
        if (flen >= (int)sizeof frags[0] ||
            lws_hdr_copy_fragment(wsi, frags[nargs], sizeof frags[nargs],
                                  WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, "query parameter too long");
        args[nargs] = frags[nargs];
        nargs++;
    }
    history_query q = { 0 };
    const char *why = NULL;
    if (http_history_params(args, nargs, c->history_default_limit, c->history_max_limit, &q,
                            &why) < 0)
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, why);
    if (!h)     /* shutting down */
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE, "history unavailable");
    if (!gate_try(g))
        return http_exchange_busy(wsi, x, "too many history reads in progress (http.max_inflight); "
                                 "try again shortly", HTTP_HISTORY_RETRY_AFTER_S);
    http_exchange *e = http_exchange_wait(wsi, x);
    http_exchange_hold(e, g);
    hh_request *rq = xmalloc(sizeof *rq + n + 1);
    rq->e = e;
    memcpy(rq->room, rname, n);
    rq->room[n] = '\0';
    q.room = rq->room;
    q.cost = hh_cost;
    history_fetch(h, &q, hh_on_page, rq);
    return 0;
}
