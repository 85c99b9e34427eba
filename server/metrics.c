/* metrics.c — Prometheus text exposition of the server's metrics.
 *
 * Names follow Prometheus conventions: `lectern_` prefix, `_total` for
 * counters, base units (bytes). Each family gets its HELP and TYPE lines.
 */
#include "metrics.h"

static void metrics_family(buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_one(buf *out, const char *name, const char *type, const char *help,
                        uint64_t v)
{
    metrics_family(out, name, type, help);
    buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_render(const metrics *m, const metrics_gauges *g, buf *out)
{
    metrics_one(out, "lectern_connections", "gauge", "Open STOMP connections.", g->connections);
    metrics_one(out, "lectern_connections_opened_total", "counter",
                "STOMP connections accepted.", m->connections_opened);
    metrics_one(out, "lectern_connections_closed_total", "counter",
                "STOMP connections closed.", m->connections_closed);
    metrics_one(out, "lectern_rooms", "gauge", "Rooms with at least one local subscriber.", g->rooms);
    metrics_one(out, "lectern_subscriptions", "gauge", "Active subscriptions.", g->subscriptions);
    metrics_one(out, "lectern_pending_bytes", "gauge",
                "Bytes queued for connections, not yet written.", g->pending_bytes);

    metrics_family(out, "lectern_frames_in_total", "counter",
                   "STOMP frames received, by command (heartbeat = EOL runs).");
    for (int c = 0; c < STOMP_CMD_COUNT; c++) {
        if (c >= STOMP_CMD_CONNECTED)
            break;        /* server frames are never received */
        buf_printf(out, "lectern_frames_in_total{command=\"%s\"} %llu\n",
                   c == STOMP_CMD_NONE ? "heartbeat" : stomp_command_name((stomp_command)c),
                   (unsigned long long)m->frames_in[c]);
    }
    metrics_one(out, "lectern_received_bytes_total", "counter",
                "WebSocket payload bytes received.", m->bytes_in);
    metrics_one(out, "lectern_ws_messages_out_total", "counter",
                "WebSocket messages written (each may pack several frames).", m->ws_messages_out);
    metrics_one(out, "lectern_sent_bytes_total", "counter",
                "WebSocket payload bytes written.", m->bytes_out);
    metrics_one(out, "lectern_messages_published_total", "counter",
                "SEND frames accepted for delivery.", m->messages_published);
    metrics_one(out, "lectern_deliveries_total", "counter",
                "MESSAGE frames queued to local subscribers.", m->deliveries_local);
    metrics_one(out, "lectern_receipts_total", "counter", "RECEIPT frames sent.", m->receipts);
    metrics_one(out, "lectern_stomp_errors_total", "counter",
                "ERROR frames sent (each closes its connection).", m->stomp_errors);
    metrics_one(out, "lectern_heartbeat_timeouts_total", "counter",
                "Connections closed for missing heart-beats.", m->heartbeat_timeouts);
    metrics_one(out, "lectern_connect_timeouts_total", "counter",
                "Connections closed for not sending CONNECT in time.", m->connect_timeouts);
    metrics_one(out, "lectern_slow_consumers_total", "counter",
                "Connections dropped for exceeding stomp.max_pending.", m->slow_consumers);
    metrics_one(out, "lectern_http_requests_total", "counter", "HTTP requests served.",
                m->http_requests);
}
