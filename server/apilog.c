/* apilog.c — counting, timing and logging the server API's requests.
 *
 * A fixed table, route x status: the routes are the X-macro list of
 * apilog.h and the statuses the handful the API answers with, so the
 * Prometheus series are bounded whatever clients send (an unexpected code
 * and a request the client abandoned before its answer are counted under
 * "other").
 * Runs on the event loop only: plain counters.
 */
#include "apilog.h"

#include "log.h"
#include "prom.h"

#include <stdio.h>

static const unsigned apilog_codes[] = {
#define APILOG_CODE(c) c,
    APILOG_STATUSES(APILOG_CODE)
#undef APILOG_CODE
};
_Static_assert(sizeof apilog_codes / sizeof apilog_codes[0] + 1 == APILOG_STATUS_COUNT,
               "APILOG_STATUS_COUNT counts the listed codes and \"other\"");

static const char *const apilog_names[] = {
#define APILOG_ROUTE_NAME(name, label) label,
    APILOG_ROUTES(APILOG_ROUTE_NAME)
#undef APILOG_ROUTE_NAME
};

void apilog_init(apilog *a)
{
    *a = (apilog){ 0 };
    histogram_init(&a->latency);
}

const char *apilog_route_name(apilog_route r)
{
    return r >= 0 && r < APILOG_ROUTE_COUNT ? apilog_names[r] : "other";
}

/* The column of status: one of the listed codes, or the last ("other"). */
static int apilog_column(unsigned status)
{
    for (int i = 0; i < APILOG_STATUS_COUNT - 1; i++)
        if (apilog_codes[i] == status)
            return i;
    return APILOG_STATUS_COUNT - 1;
}

void apilog_record(apilog *a, apilog_route r, const char *method, unsigned status,
                   uint64_t us, const char *peer)
{
    if (r < 0 || r >= APILOG_ROUTE_COUNT)
        return;
    a->requests[r][apilog_column(status)]++;
    histogram_observe_us(&a->latency, us);
    log_info("api_request", "route=%s method=%s status=%u ms=%.1f peer=%s",
             apilog_names[r], method, status, (double)us / 1000.0, peer[0] ? peer : "-");
}

void apilog_render(const apilog *a, buf *out)
{
    char labels[96];
    prom_family(out, "lectern_api_requests_total", "counter",
                "Server API requests (api.keys), by route and status (code=\"other\": "
                "any other, or the client went before the answer).");
    for (int r = 0; r < APILOG_ROUTE_COUNT; r++)
        for (int c = 0; c < APILOG_STATUS_COUNT; c++) {
            if (c < APILOG_STATUS_COUNT - 1)
                snprintf(labels, sizeof labels, "route=\"%s\",code=\"%u\"", apilog_names[r],
                         apilog_codes[c]);
            else
                snprintf(labels, sizeof labels, "route=\"%s\",code=\"other\"", apilog_names[r]);
            prom_sample(out, "lectern_api_requests_total", labels, a->requests[r][c]);
        }
    histogram_render(&a->latency, "lectern_api_request_seconds",
                     "Server API requests, from the request to its answer written.", out);
}
