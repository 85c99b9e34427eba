-- 0001_messages.sql — the room message store.
--
-- One row per message, keyed by (room, message id). The message id is the
-- room log's id "<ms>-<n>" (a Redis stream id) split into two integers so
-- that ids order numerically and every page of history is one index range
-- scan. Inserts are idempotent on the key: a redelivered message is a no-op
-- (INSERT ... ON DUPLICATE KEY UPDATE id_ms = id_ms).
--
-- Text that comes from clients (sender, names, content type, headers, body)
-- is stored as bytes: the server relays them unchanged, and a byte column
-- can never reject a row for its encoding (which would poison the queue).
--
-- epoch/seq are the room order (see docs/architecture.md): within one
-- epoch, seq is dense, which lets readers tell a complete range from one
-- with a message still on its way to storage.
CREATE TABLE IF NOT EXISTS messages (
    room         VARBINARY(255)  NOT NULL,
    id_ms        BIGINT UNSIGNED NOT NULL,
    id_n         BIGINT UNSIGNED NOT NULL,
    epoch        BIGINT UNSIGNED NOT NULL,
    seq          BIGINT UNSIGNED NOT NULL,
    ts_ms        BIGINT UNSIGNED NOT NULL,
    sender       VARBINARY(1024) NOT NULL,
    sender_name  VARBINARY(1024) NOT NULL,
    content_type VARBINARY(1024) NULL,
    headers      BLOB            NULL,
    body         MEDIUMBLOB      NOT NULL,
    origin       VARBINARY(255)  NOT NULL,
    stored_at    TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (room, id_ms, id_n)
) ENGINE=InnoDB;
