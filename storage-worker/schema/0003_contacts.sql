-- 0003_contacts.sql — stored contact lists (whose online status a user may watch).
--
-- A row of contact_lists means the user HAS a stored list, which may be
-- empty: a stored list wins over the `contacts` claim of the user's token
-- (docs/protocol.md, "Contacts"). contacts holds the list itself, one row
-- per (user, contact); lists are directed (U's list says whose status U may
-- watch). Written by lectern-server's API (PUT/PATCH/DELETE
-- /api/users/<id>/contacts), each change one transaction that first
-- upserts (and so locks) the contact_lists row. User ids are bytes (1..128,
-- checked by the server), like every client-supplied text of the store.
CREATE TABLE IF NOT EXISTS contact_lists (
    user_id    VARBINARY(128) NOT NULL,
    updated_at TIMESTAMP(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (user_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS contacts (
    user_id    VARBINARY(128) NOT NULL,
    contact_id VARBINARY(128) NOT NULL,
    PRIMARY KEY (user_id, contact_id)
) ENGINE=InnoDB;
