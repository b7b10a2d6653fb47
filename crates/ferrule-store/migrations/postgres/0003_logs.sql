-- CloudWatch Logs: log groups, their streams and the streams' events (what the function
-- runtime and the rules engine write, and `aws logs` reads). migrations/sqlite/0004_logs.sql
-- is the same schema in SQLite's dialect; keep the two in step. Text keys use the "C"
-- collation, as in 0001_registry.sql, so pages sort byte-wise as on SQLite.
--
-- Deleting a group deletes its streams, and deleting a stream its events. `log_events.id`
-- only orders events that share a timestamp and makes paging tokens stable; it is never shown
-- to clients except as `eventId`.
CREATE TABLE log_groups (
    name              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    created_ms        BIGINT NOT NULL,
    retention_in_days BIGINT
);

CREATE TABLE log_streams (
    group_name        TEXT COLLATE "C" NOT NULL REFERENCES log_groups (name) ON DELETE CASCADE,
    name              TEXT COLLATE "C" NOT NULL,
    created_ms        BIGINT NOT NULL,
    first_event_ms    BIGINT,
    last_event_ms     BIGINT,
    last_ingestion_ms BIGINT,
    PRIMARY KEY (group_name, name)
);

CREATE TABLE log_events (
    id           BIGSERIAL PRIMARY KEY,
    group_name   TEXT COLLATE "C" NOT NULL,
    stream_name  TEXT COLLATE "C" NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    ingestion_ms BIGINT NOT NULL,
    message      TEXT   NOT NULL,
    FOREIGN KEY (group_name, stream_name) REFERENCES log_streams (group_name, name)
        ON DELETE CASCADE
);
CREATE INDEX log_events_by_stream ON log_events (group_name, stream_name, timestamp_ms, id);
CREATE INDEX log_events_by_group ON log_events (group_name, timestamp_ms, id);
