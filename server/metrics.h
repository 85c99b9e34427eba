/* metrics.h — the server's counters and their Prometheus rendering.
 *
 * Counters are plain fields bumped on the event loop (single-threaded, so no
 * atomics). Gauges that are properties of live state (connections, rooms,
 * subscriptions) are not stored here but read at render time, so they can
 * never drift from the truth.
 */
#ifndef LECTERN_METRICS_H
#define LECTERN_METRICS_H

#include <stdint.h>

#include "apilog.h"
#include "buf.h"
#include "error_reason.h"
#include "histogram.h"
#include "stomp.h"

/* Frames we send, by kind (lectern_frames_out_total{command}). */
/* Moderation actions, by kind (lectern_moderation_actions_total{action});
 * the order of moderation.h's moderation_action. */
enum { METRICS_MOD_KICK, METRICS_MOD_BAN, METRICS_MOD_UNBAN, METRICS_MOD_MUTE,
       METRICS_MOD_UNMUTE, METRICS_MOD_COUNT };
enum { METRICS_OUT_MESSAGE, METRICS_OUT_RECEIPT, METRICS_OUT_ERROR, METRICS_OUT_CONNECTED,
       METRICS_OUT_HEARTBEAT, METRICS_OUT_COUNT };


typedef struct metrics {
    uint64_t connections_opened;
    uint64_t connections_closed;
    uint64_t frames_in[STOMP_CMD_COUNT];   /* [STOMP_CMD_NONE] counts heart-beats */
    uint64_t bytes_in;
    uint64_t ws_messages_out;              /* WebSocket messages written */
    uint64_t writes_delayed;               /* outputs that waited for websocket.write_delay_ms */
    uint64_t bytes_out;
    uint64_t messages_published;           /* SENDs accepted for delivery */
    uint64_t deliveries_local;             /* MESSAGE frames queued to local subscribers */
    uint64_t deliveries_replayed;          /* MESSAGE frames replayed for x-since */
    uint64_t resume_overlap_dropped;       /* live copies of messages a replay delivered */
    uint64_t receipts;
    uint64_t stomp_errors;                 /* ERROR frames sent */
    uint64_t heartbeat_timeouts;
    uint64_t connect_timeouts;
    uint64_t slow_consumers;
    uint64_t auth_failures;                /* CONNECTs and /api requests refused: bad token */
    uint64_t access_denied;                /* SUBSCRIBE/SEND/API refused: room not permitted */
    uint64_t token_expiries;               /* sessions ended by ERROR "Token expired" */
    uint64_t token_refreshes;              /* fresh tokens accepted (SEND to /token) */
    uint64_t throttled;                    /* times a connection was paused by limits.*_rate */
    uint64_t conn_memory_closes;           /* connections closed over limits.conn_memory */
    uint64_t conn_limit_rejects;           /* upgrades refused by limits.max_conns_per_ip */
    uint64_t origin_rejects;               /* upgrades refused by websocket.allowed_origins */
    uint64_t frame_timeouts;
    uint64_t rx_paced;                     /* times reads were paced (stomp.drip_pieces) */
    uint64_t pieces_refused;               /* frames over stomp.max_frame_pieces */
    uint64_t idle_timeouts;
    uint64_t restart_closes;               /* connections closed with 1012 by a drain */
    uint64_t status_events;                /* status changes heard from the registry */
    uint64_t status_deliveries;            /* status MESSAGEs queued to watchers */
    uint64_t status_snapshots;             /* /status snapshots sent */
    uint64_t frames_out[METRICS_OUT_COUNT];
    uint64_t errors_by_reason[ERROR_REASON_COUNT];   /* ERROR frames, by reason */
    histogram delivery;                    /* SEND accepted -> MESSAGE written (sampled) */
    apilog api;                            /* the server API's requests */
    uint64_t http_requests;
    uint64_t contacts_cache_hits;          /* contact lists from this server's cache */
    uint64_t contacts_redis_hits;          /* ... from Redis */
    uint64_t contacts_mysql_reads;         /* ... read from MySQL */
    uint64_t contacts_errors;              /* lookups that failed (Redis and MySQL) */
    uint64_t contacts_writes;              /* lists changed through the API */
    uint64_t moderation_actions[METRICS_MOD_COUNT];   /* applied by this server */
    uint64_t moderation_ended_subs;        /* local subscriptions ended by a kick or ban */
    uint64_t moderation_banned_subscribes; /* SUBSCRIBEs refused: banned */
} metrics;

/* Values read from live state (and from the registry, bus and relay) at
 * render time. */
typedef struct metrics_gauges {
    uint64_t connections;
    uint64_t conn_connecting;              /* by state: waiting for CONNECT, */
    uint64_t conn_connected;               /* connected, */
    uint64_t conn_closing;                 /* closing (ERROR, DISCONNECT, drain) */
    const histogram *bus_confirm;          /* storage copy queued -> confirmed */
    uint64_t rooms;
    uint64_t subscriptions;
    uint64_t status_watched;               /* users watched for /status */
    uint64_t status_subscriptions;
    uint64_t pending_bytes;
    uint64_t conn_memory;                  /* bytes charged to connections' budgets */
    uint64_t registry_up;
    uint64_t registry_reconnects;
    uint64_t servers_reaped;
    uint64_t reregistrations;
    uint64_t registry_unreplicated;
    uint64_t bus_up;
    uint64_t bus_reconnects;
    uint64_t bus_publish_failures;
    uint64_t bus_dropped_own;
    uint64_t bus_malformed;
    uint64_t bus_queued;
    uint64_t bus_inbound_bytes;
    uint64_t bus_inbound_pauses;
    uint64_t bus_unconfirmed;
    uint64_t bus_stored;
    uint64_t bus_store_failures;
    uint64_t bus_republished;
    uint64_t bus_nacks;
    uint64_t bus_nack_reopens;
    uint64_t bus_storage_publishes;
    uint64_t bus_confirm_us_sum;
    uint64_t bus_published;
    uint64_t bus_skipped;
    uint64_t bus_received;
    uint64_t bus_no_room;
    uint64_t history_queries;
    uint64_t history_from_redis;
    uint64_t history_from_mysql;
    uint64_t history_hole_retries;
    uint64_t history_holes_returned;
    uint64_t history_mysql_errors;
    uint64_t history_pages_cut;
    uint64_t history_inflight;
    uint64_t history_waiting;
    uint64_t history_rejected;
    uint64_t gaps_filled;
    uint64_t gaps_lost;
    uint64_t catchups;
    uint64_t idempotent_repeats;
    uint64_t auth_insecure;                /* 1: auth.mode none or insecure-dev */
    uint64_t tls_cert_expiry;              /* notAfter of server.tls_cert (Unix s); 0: no TLS */
    uint64_t tls_reloads;                  /* SIGHUPs that loaded a new pair */
    uint64_t tls_reload_failures;          /* SIGHUPs whose pair was refused */
    uint64_t rx_more_reads;                /* reads beyond epoll's (websocket.rx_reads) */
} metrics_gauges;

/* Zero m (histograms included). */
void metrics_init(metrics *m);


/* Append the Prometheus text exposition (version 0.0.4) to out. */
void metrics_render(const metrics *m, const metrics_gauges *g, buf *out);

/* Rates over the last whole second (the server's tick measures them), for
 * /api/stats. */
typedef struct metrics_rates {
    double published_per_s;      /* SENDs accepted */
    double delivered_per_s;      /* MESSAGEs queued to local subscribers */
} metrics_rates;

#endif
