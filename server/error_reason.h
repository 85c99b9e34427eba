/* error_reason.h — every reason a connection is sent an ERROR frame.
 *
 * The message header of every ERROR the server sends is one of these (the
 * body carries the detail), so clients can match on it (docs/protocol.md)
 * and lectern_stomp_errors_by_reason_total counts each under its own label:
 * an ERROR is raised by its reason, never by a free-form string, so a new
 * one cannot be left out of the metric.
 */
#ifndef LECTERN_ERROR_REASON_H
#define LECTERN_ERROR_REASON_H

/* X(name, message header) */
#define ERROR_REASON_LIST(X)                                                        \
    X(MALFORMED_FRAME, "Malformed frame")                                           \
    X(NOT_CONNECTED, "Not connected")                                               \
    X(ALREADY_CONNECTED, "Already connected")                                       \
    X(UNSUPPORTED_VERSION, "Supported protocol versions are 1.0,1.1,1.2")           \
    X(INVALID_HEARTBEAT, "Invalid heart-beat header")                               \
    X(MISSING_HEADER, "Missing header")                                             \
    X(UNKNOWN_DESTINATION, "Unknown destination")                                   \
    X(INVALID_DESTINATION, "Invalid destination")                                   \
    X(READ_ONLY_DESTINATION, "Read-only destination")                               \
    X(INVALID_IDENTITY, "Invalid identity")                                         \
    X(ACCESS_REFUSED, "Access refused")                                             \
    X(FRAME_TIMEOUT, "Frame timeout")                                               \
    X(SERVICE_UNAVAILABLE, "Service unavailable")                                   \
    X(MESSAGE_NOT_STORED, "Message not stored")                                     \
    X(TOO_LARGE_FOR_STORAGE, "Message too large for storage")                       \
    X(INVALID_SINCE, "Invalid x-since")                                             \
    X(RESUME_FAILED, "Resume failed")                                               \
    X(DUPLICATE_SUBSCRIPTION, "Duplicate subscription id")                          \
    X(UNKNOWN_SUBSCRIPTION, "Unknown subscription")                                 \
    X(INVALID_ACK_MODE, "Invalid ack mode")                                         \
    X(TOO_MANY_SUBSCRIPTIONS, "Too many subscriptions")                             \
    X(DUPLICATE_TRANSACTION, "Duplicate transaction")                               \
    X(UNKNOWN_TRANSACTION, "Unknown transaction")                                   \
    X(TOO_MANY_TRANSACTIONS, "Too many transactions")                               \
    X(TRANSACTION_TOO_LARGE, "Transaction too large")                               \
    X(UNEXPECTED_FRAME, "Unexpected frame")                                         \
    X(TOKEN_EXPIRED, "Token expired")                                               \
    X(CONN_MEMORY, "Connection memory limit")                                       \
    X(TOO_MANY_PIECES, "Frame in too many pieces")                                  \
    X(SLOW_CONSUMER, "Slow consumer")                                               \
    X(INVALID_USERS, "Invalid x-users")                                             \
    X(INVALID_STATUS, "Invalid status")                                             \
    X(BANNED, "Banned")                                                             \
    X(MUTED, "Muted")                                                               \
    X(INVALID_IDEMPOTENCY_KEY, "Invalid x-idempotency-key")                         \
    X(INVALID_CONTROL, "Invalid control frame")

typedef enum error_reason {
#define ERROR_REASON_ENUM(name, text) ERROR_##name,
    ERROR_REASON_LIST(ERROR_REASON_ENUM)
#undef ERROR_REASON_ENUM
    ERROR_REASON_COUNT
} error_reason;

/* The message header of reason r (a static string); "other" out of range. */
const char *error_reason_message(error_reason r);

#endif
