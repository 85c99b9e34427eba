/* metrics.c — Prometheus text exposition of the server's metrics.
 *
 * Names follow Prometheus conventions: `lectern_` prefix, `_total` for
 * counters, base units (bytes). Each family gets its HELP and TYPE lines
 * (lib/prom writes the format). Single-valued metrics are rows of a table,
 * so adding one is one line.
 */
#include "metrics.h"

#include "prom.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The summaries session.c puts in ERROR frames (docs/protocol.md); the
 * last row collects anything else. */
void metrics_init(metrics *m)
{
    memset(m, 0, sizeof *m);
    histogram_init(&m->delivery);
    apilog_init(&m->api);
}

/* One row per single-valued metric: where its value lives, and its text. */
typedef struct metrics_row {
    const char *name;
    const char *type;
    bool live;             /* value is in metrics_gauges, else in metrics */
    size_t offset;
    const char *help;
} metrics_row;

#define C(field, name, help) { name, "counter", false, offsetof(metrics, field), help }
#define G(field, name, help) { name, "gauge", true, offsetof(metrics_gauges, field), help }
#define L(field, name, help) { name, "counter", true, offsetof(metrics_gauges, field), help }

static const metrics_row metrics_rows[] = {
    G(connections, "lectern_connections", "Open STOMP connections."),
    C(connections_opened, "lectern_connections_opened_total", "STOMP connections accepted."),
    C(connections_closed, "lectern_connections_closed_total", "STOMP connections closed."),
    G(rooms, "lectern_rooms", "Rooms with at least one local subscriber."),
    G(subscriptions, "lectern_subscriptions", "Active subscriptions."),
    G(pending_bytes, "lectern_pending_bytes", "Bytes queued for connections, not yet written."),
    C(bytes_in, "lectern_received_bytes_total", "WebSocket payload bytes received."),
    C(ws_messages_out, "lectern_ws_messages_out_total",
      "WebSocket messages written (each may pack several frames)."),
    C(writes_delayed, "lectern_ws_writes_delayed_total",
      "Times a connection's output waited for websocket.write_delay_ms (its last\n"
      "write was more recent) to share a later write."),
    C(bytes_out, "lectern_sent_bytes_total", "WebSocket payload bytes written."),
    C(messages_published, "lectern_messages_published_total", "SEND frames accepted for delivery."),
    C(deliveries_local, "lectern_deliveries_total", "MESSAGE frames queued to local subscribers."),
    C(deliveries_replayed, "lectern_deliveries_replayed_total",
      "MESSAGE frames replayed from history to subscriptions resuming with x-since."),
    C(resume_overlap_dropped, "lectern_resume_overlap_dropped_total",
      "Live messages not delivered because the x-since replay just before had delivered\n"
      "them from history (history was ahead of the bus)."),
    C(receipts, "lectern_receipts_total", "RECEIPT frames sent."),
    C(stomp_errors, "lectern_stomp_errors_total", "ERROR frames sent (each closes its connection)."),
    C(heartbeat_timeouts, "lectern_heartbeat_timeouts_total",
      "Connections closed for missing heart-beats."),
    C(connect_timeouts, "lectern_connect_timeouts_total",
      "Connections closed for not sending CONNECT in time."),
    C(slow_consumers, "lectern_slow_consumers_total",
      "Connections dropped for exceeding stomp.max_pending (close code 1008)."),
    C(auth_failures, "lectern_auth_failures_total",
      "CONNECTs and API requests refused for a missing, invalid or expired token."),
    C(access_denied, "lectern_access_denied_total",
      "SUBSCRIBEs, SENDs and API requests refused: the token does not permit the room."),
    C(token_expiries, "lectern_token_expiries_total",
      "Sessions closed with ERROR \"Token expired\": exp + auth.clock_skew_s passed."),
    C(token_refreshes, "lectern_token_refreshes_total",
      "Fresh tokens a session accepted (SEND to /token); refusals count as auth failures."),
    C(throttled, "lectern_throttled_total",
      "Times a connection's input was paused by limits.send_rate / send_bytes_rate /\n"
      "frame_rate."),
    C(conn_memory_closes, "lectern_conn_memory_closes_total",
      "Connections closed for holding more than limits.conn_memory: ERROR \"Connection\n"
      "memory limit\" (input), or a slow-consumer close (output; also counted there)."),
    G(conn_memory, "lectern_conn_memory_bytes",
      "Server memory all connections hold, as charged to their limits.conn_memory\n"
      "(partial input, transactions, operations and receipts waiting, subscriptions,\n"
      "messages held for replays, output not yet written)."),
    C(conn_limit_rejects, "lectern_conn_limit_rejects_total",
      "WebSocket upgrades refused (429) by limits.max_conns_per_ip."),
    C(origin_rejects, "lectern_origin_rejects_total",
      "WebSocket upgrades refused (403): Origin not in websocket.allowed_origins."),
    G(auth_insecure, "lectern_auth_insecure",
      "1 when the server runs without authentication (auth.mode none or insecure-dev)."),
    G(tls_cert_expiry, "lectern_tls_cert_expiry_timestamp_seconds",
      "When the certificate server.port serves (server.tls_cert) expires, Unix\n"
      "seconds (alert well before it); 0 without TLS."),
    L(tls_reloads, "lectern_tls_reloads_total",
      "SIGHUPs that loaded server.tls_cert and server.tls_key again."),
    L(tls_reload_failures, "lectern_tls_reload_failures_total",
      "SIGHUPs whose certificate or key was refused (the previous pair stays;\n"
      "logged as tls_reload_failed)."),
    L(rx_more_reads, "lectern_rx_more_reads_total",
      "Reads of a connection beyond the one per loop iteration epoll reports:\n"
      "more was queued after a read (websocket.rx_buffer, websocket.rx_reads)."),
    C(frame_timeouts, "lectern_frame_timeouts_total",
      "Connections closed for not completing a frame within stomp.frame_timeout_ms."),
    C(rx_paced, "lectern_rx_paced_total",
      "Times a connection's reads were paced (SO_RCVLOWAT raised to 4 KiB)\n"
      "because a frame arrived in more than stomp.drip_pieces small pieces."),
    C(pieces_refused, "lectern_frame_pieces_refused_total",
      "Connections closed because a frame was split across more WebSocket frames\n"
      "than stomp.max_frame_pieces."),
    C(idle_timeouts, "lectern_idle_timeouts_total",
      "Connections closed for sending nothing within stomp.idle_timeout_ms."),
    C(restart_closes, "lectern_restart_closes_total",
      "Connections closed with 1012 (service restart) by a SIGTERM drain."),
    C(http_requests, "lectern_http_requests_total", "HTTP requests served."),
    C(status_events, "lectern_status_events_total",
      "Status changes (online/offline) of watched users heard from the registry."),
    C(status_deliveries, "lectern_status_deliveries_total",
      "Status change MESSAGEs queued to /status subscribers."),
    C(status_snapshots, "lectern_status_snapshots_total", "/status snapshots sent."),
    G(status_watched, "lectern_status_watched_users",
      "Users this server watches for its /status subscribers (each once)."),
    G(status_subscriptions, "lectern_status_subscriptions", "/status subscriptions here."),
    C(contacts_cache_hits, "lectern_contacts_cache_hits_total",
      "Contact-list lookups answered from this server's cache (contacts.cache_ttl_ms)."),
    C(contacts_redis_hits, "lectern_contacts_redis_hits_total",
      "Contact-list lookups answered from Redis (P contacts:U)."),
    C(contacts_mysql_reads, "lectern_contacts_mysql_reads_total",
      "Contact lists read from MySQL (a Redis miss, or Redis down)."),
    C(contacts_errors, "lectern_contacts_errors_total",
      "Contact-list lookups that failed: neither Redis nor MySQL answered."),
    C(contacts_writes, "lectern_contacts_writes_total",
      "Stored contact lists changed through PUT, PATCH or DELETE /api/users/<id>/contacts."),
    C(moderation_ended_subs, "lectern_moderation_ended_subscriptions_total",
      "Subscriptions of this server ended by a kick or a ban (from any server)."),
    C(moderation_banned_subscribes, "lectern_moderation_banned_subscribes_total",
      "SUBSCRIBEs refused with ERROR Banned."),
    G(registry_up, "lectern_registry_up", "1 when registered in Redis and usable."),
    L(registry_reconnects, "lectern_registry_reconnects_total", "Reconnects to Redis."),
    L(servers_reaped, "lectern_servers_reaped_total", "Dead servers this server reaped."),
    L(reregistrations, "lectern_reregistrations_total",
      "Times this server found itself reaped and registered again."),
    L(registry_unreplicated, "lectern_registry_unreplicated_total",
      "Messages that went on although Redis WAIT found fewer replicas than redis.wait_replicas."),
    G(bus_up, "lectern_bus_up", "1 when both RabbitMQ connections are up."),
    L(bus_reconnects, "lectern_bus_reconnects_total", "Reconnects to RabbitMQ."),
    L(bus_published, "lectern_bus_published_total",
      "Room messages published to the bus (other servers had members)."),
    L(bus_skipped, "lectern_bus_skipped_total",
      "Room messages not published: no other server had members (local bypass)."),
    L(bus_publish_failures, "lectern_bus_publish_failures_total",
      "Publishes lost with a failed connection (other servers catch up from the log)."),
    G(bus_queued, "lectern_bus_queued", "Messages waiting to be published to the bus."),
    G(bus_inbound_bytes, "lectern_bus_inbound_bytes",
      "Bytes of other servers' messages waiting for the event loop (capped by bus.inbound_max)."),
    L(bus_inbound_pauses, "lectern_bus_inbound_pauses_total",
      "Times the bus stopped reading from RabbitMQ because bus.inbound_max was reached."),
    G(bus_unconfirmed, "lectern_bus_unconfirmed",
      "Messages published to the storage queue, waiting for RabbitMQ's confirm."),
    L(bus_stored, "lectern_bus_stored_total",
      "Storage copies confirmed durable by RabbitMQ (publisher confirms)."),
    L(bus_store_failures, "lectern_bus_store_failures_total",
      "Messages whose storage copy was nacked or not confirmed in time (SEND got ERROR)."),
    L(bus_republished, "lectern_bus_republished_total",
      "Storage copies published again after a RabbitMQ reconnect or a nack."),
    L(bus_nacks, "lectern_bus_nacks_total",
      "Storage copies RabbitMQ refused (basic.nack) and that were published again\n"
      "after storage.nack_retry_ms (a quorum queue electing a leader, a full queue)."),
    L(bus_nack_reopens, "lectern_bus_nack_reopens_total",
      "Publisher connections closed and opened again because RabbitMQ refused\n"
      "storage copies for storage.nack_reopen_ms without confirming one."),
    L(bus_storage_publishes, "lectern_bus_storage_publishes_total",
      "AMQP messages carrying storage copies (a batch counts once; stored / this\n"
      "is the mean batch size)."),
    L(bus_confirm_us_sum, "lectern_bus_confirm_microseconds_total",
      "Queue-to-confirm time of confirmed storage copies, summed (divide by stored)."),
    L(bus_received, "lectern_bus_received_total",
      "Messages from other servers offered to a local room."),
    L(bus_no_room, "lectern_bus_no_room_total",
      "Messages from other servers for rooms not hosted here (fanout mode)."),
    L(bus_dropped_own, "lectern_bus_dropped_own_total", "Our own messages coming back."),
    L(bus_malformed, "lectern_bus_malformed_total", "Bus messages without a valid envelope."),
    L(history_queries, "lectern_history_queries_total",
      "History range queries (HTTP history and x-since replays)."),
    L(history_from_redis, "lectern_history_redis_messages_total",
      "History messages answered from the Redis room logs."),
    L(history_from_mysql, "lectern_history_mysql_messages_total",
      "History messages answered from MySQL."),
    L(history_hole_retries, "lectern_history_hole_retries_total",
      "History ranges read again because MySQL did not hold them completely yet."),
    L(history_holes_returned, "lectern_history_holes_returned_total",
      "History ranges answered with a message missing after history.hole_wait_ms."),
    L(history_mysql_errors, "lectern_history_mysql_errors_total",
      "Failed MySQL connects and queries of the history pool."),
    L(history_pages_cut, "lectern_history_pages_cut_total",
      "History pages ended by history.max_bytes before their limit."),
    G(history_inflight, "lectern_history_inflight",
      "History reads holding a slot now (HTTP requests and x-since replays; at\n"
      "most http.max_inflight)."),
    G(history_waiting, "lectern_history_waiting",
      "x-since replays waiting for a history slot."),
    L(history_rejected, "lectern_history_rejected_total",
      "History requests answered 503 because http.max_inflight reads were in progress."),
    L(gaps_filled, "lectern_gaps_filled_total", "Messages recovered from a room log."),
    L(gaps_lost, "lectern_gaps_lost_total", "Messages a room log could no longer provide."),
    L(catchups, "lectern_catchups_total", "Catch-up reads of room logs after reconnects."),
    L(idempotent_repeats, "lectern_idempotent_repeats_total",
      "Publishes (SENDs, API publishes) that repeated an idempotency key within\n"
      "api.idempotency_window_s: answered with the first copy's id, not delivered again."),
};

void metrics_render(const metrics *m, const metrics_gauges *g, buf *out)
{
    char labels[96];
    for (size_t i = 0; i < sizeof metrics_rows / sizeof metrics_rows[0]; i++) {
        const metrics_row *r = &metrics_rows[i];
        const char *base = r->live ? (const char *)g : (const char *)m;
        uint64_t v = *(const uint64_t *)(base + r->offset);
        prom_metric(out, r->name, r->type, r->help, v);
    }

    prom_family(out, "lectern_connections_state", "gauge", "Open STOMP connections by state.");
    prom_sample(out, "lectern_connections_state", "state=\"connecting\"", g->conn_connecting);
    prom_sample(out, "lectern_connections_state", "state=\"connected\"", g->conn_connected);
    prom_sample(out, "lectern_connections_state", "state=\"closing\"", g->conn_closing);

    static const char *const out_names[METRICS_OUT_COUNT] = {
        "MESSAGE", "RECEIPT", "ERROR", "CONNECTED", "heartbeat",
    };
    prom_family(out, "lectern_frames_out_total", "counter",
                "STOMP frames queued to clients, by command.");
    for (int i = 0; i < METRICS_OUT_COUNT; i++) {
        snprintf(labels, sizeof labels, "command=\"%s\"", out_names[i]);
        prom_sample(out, "lectern_frames_out_total", labels, m->frames_out[i]);
    }

    prom_family(out, "lectern_stomp_errors_by_reason_total", "counter",
                "ERROR frames sent, by their message header (docs/protocol.md).");
    for (int i = 0; i < ERROR_REASON_COUNT; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", error_reason_message((error_reason)i));
        prom_sample(out, "lectern_stomp_errors_by_reason_total", labels, m->errors_by_reason[i]);
    }

    histogram_render(&m->delivery, "lectern_delivery_seconds",
                     "SEND accepted (its server timestamp) to MESSAGE written to a subscriber's "
                     "socket; one sample per socket write, the oldest MESSAGE in it.", out);
    if (g->bus_confirm)
        histogram_render(g->bus_confirm, "lectern_bus_confirm_seconds",
                         "Storage copy queued for RabbitMQ to its publisher confirm.", out);

    static const char *const mod_names[METRICS_MOD_COUNT] = {
        "kick", "ban", "unban", "mute", "unmute",
    };
    prom_family(out, "lectern_moderation_actions_total", "counter",
                "Kicks, bans, mutes and their lifting applied through this server, by action.");
    for (int i = 0; i < METRICS_MOD_COUNT; i++) {
        snprintf(labels, sizeof labels, "action=\"%s\"", mod_names[i]);
        prom_sample(out, "lectern_moderation_actions_total", labels, m->moderation_actions[i]);
    }

    apilog_render(&m->api, out);

    prom_family(out, "lectern_frames_in_total", "counter",
                "STOMP frames received, by command (heartbeat = EOL runs).");
    for (int c = 0; c < STOMP_CMD_CONNECTED; c++) {   /* server frames are never received */
        snprintf(labels, sizeof labels, "command=\"%s\"",
                 c == STOMP_CMD_NONE ? "heartbeat" : stomp_command_name((stomp_command)c));
        prom_sample(out, "lectern_frames_in_total", labels, m->frames_in[c]);
    }
}
