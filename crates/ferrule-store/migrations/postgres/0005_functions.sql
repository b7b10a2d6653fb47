-- Lambda functions, their resource-policy statements, and the temporary credentials (IAM
-- sessions) issued for execution roles. migrations/sqlite/0006_functions.sql is the same
-- tables in SQLite's dialect; keep the two in step.
--
-- Function names are case-sensitive, as in Lambda. `environment` is the function's
-- environment variables as a JSON object of strings. The code zip lives in its own table so
-- that reading and listing configurations never touches it.
-- Text keys that lists sort by use the "C" collation, as in 0001_registry.sql.
CREATE TABLE functions (
    name             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    runtime          TEXT   NOT NULL,
    handler          TEXT   NOT NULL,
    role             TEXT   NOT NULL,
    description      TEXT   NOT NULL,
    timeout_s        BIGINT NOT NULL,
    memory_mb        BIGINT NOT NULL,
    environment      TEXT   NOT NULL,
    code_sha256      TEXT   NOT NULL,
    code_size        BIGINT NOT NULL,
    revision_id      TEXT   NOT NULL,
    created_ms       BIGINT NOT NULL,
    last_modified_ms BIGINT NOT NULL
);
CREATE TABLE function_code (
    function_name TEXT  NOT NULL PRIMARY KEY,
    zip           BYTEA NOT NULL
);
-- `statement` is one resource-policy statement as JSON text, stored as given; `position`
-- keeps the order statements were added in (counting up per function, never reused while
-- the function exists).
CREATE TABLE function_permissions (
    function_name TEXT   NOT NULL,
    sid           TEXT   NOT NULL,
    statement     TEXT   NOT NULL,
    position      BIGINT NOT NULL,
    PRIMARY KEY (function_name, sid)
);
CREATE INDEX function_permissions_in_order ON function_permissions (function_name, position);
-- Temporary credentials for a role (what STS AssumeRole returns). `role_name` is the role's
-- name, not its ARN. Secrets are kept in the clear: SigV4 verification needs them.
CREATE TABLE iam_sessions (
    access_key_id     TEXT   NOT NULL PRIMARY KEY,
    secret_access_key TEXT   NOT NULL,
    session_token     TEXT   NOT NULL,
    role_name         TEXT   NOT NULL,
    session_name      TEXT   NOT NULL,
    created_ms        BIGINT NOT NULL,
    expires_ms        BIGINT NOT NULL
);
CREATE INDEX iam_sessions_by_expiry ON iam_sessions (expires_ms);
