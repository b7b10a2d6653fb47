-- Broker state written behind from memory: retained messages and persistent MQTT sessions.
-- Message bodies are opaque blobs encoded by the broker. Integers are BIGINT-compatible so the
-- PostgreSQL migration can use the same column names and types (BLOB becomes BYTEA there).

CREATE TABLE retained_messages (
    topic        TEXT    NOT NULL PRIMARY KEY,
    message      BLOB    NOT NULL,
    stored_at_ms BIGINT  NOT NULL
);

CREATE TABLE mqtt_sessions (
    client_id           TEXT    NOT NULL PRIMARY KEY,
    protocol_level      INTEGER NOT NULL,
    -- 4294967295 (u32::MAX) means the session never expires.
    session_expiry_secs BIGINT  NOT NULL,
    disconnected_at_ms  BIGINT
);

-- `position` keeps the order the broker handed the subscriptions over in.
CREATE TABLE mqtt_session_subscriptions (
    client_id       TEXT    NOT NULL REFERENCES mqtt_sessions (client_id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    filter          TEXT    NOT NULL,
    options         INTEGER NOT NULL,
    subscription_id BIGINT,
    PRIMARY KEY (client_id, position)
);

-- `seq` keeps the order of the session's outgoing queue.
CREATE TABLE mqtt_session_queue (
    client_id      TEXT    NOT NULL REFERENCES mqtt_sessions (client_id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    message        BLOB    NOT NULL,
    packet_id      INTEGER,
    pubrel_pending BOOLEAN NOT NULL,
    PRIMARY KEY (client_id, seq)
);
