-- CloudWatch Logs: log groups, their streams and the streams' events (what the function
-- runtime and the rules engine write, and `aws logs` reads). migrations/postgres/0003_logs.sql
-- is the same schema in PostgreSQL's dialect; keep the two in step.
--
-- Deleting a group deletes its streams, and deleting a stream its events (foreign keys are on
-- for every registry connection). `log_events.id` only orders events that share a timestamp
-- and makes paging tokens stable; it is never shown to clients except as `eventId`.
CREATE TABLE log_groups (
    name              TEXT   NOT NULL PRIMARY KEY,
    created_ms        BIGINT NOT NULL,
    retention_in_days BIGINT
);

CREATE TABLE log_streams (
    group_name        TEXT   NOT NULL REFERENCES log_groups (name) ON DELETE CASCADE,
    name              TEXT   NOT NULL,
    created_ms        BIGINT NOT NULL,
    first_event_ms    BIGINT,
    last_event_ms     BIGINT,
    last_ingestion_ms BIGINT,
    PRIMARY KEY (group_name, name)
);

CREATE TABLE log_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name   TEXT   NOT NULL,
    stream_name  TEXT   NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    ingestion_ms BIGINT NOT NULL,
    message      TEXT   NOT NULL,
    FOREIGN KEY (group_name, stream_name) REFERENCES log_streams (group_name, name)
        ON DELETE CASCADE
);
CREATE INDEX log_events_by_stream ON log_events (group_name, stream_name, timestamp_ms, id);
CREATE INDEX log_events_by_group ON log_events (group_name, timestamp_ms, id);
