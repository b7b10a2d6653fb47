-- IAM roles, users, access keys and inline policies (the control plane's IAM front).
-- migrations/sqlite/0005_iam.sql is the same tables in SQLite's dialect; keep the two
-- in step.
--
-- AWS treats role and user names as case-insensitive for uniqueness and lookup, and keeps the
-- case they were created with: `name_key` is the lowercased name, `name` the name as given.
-- Policy documents are stored as the JSON text the caller sent (already URL-decoded).
-- `secret_access_key` is kept in the clear: SigV4 verification needs the secret itself.
CREATE TABLE iam_roles (
    name_key             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name                 TEXT COLLATE "C" NOT NULL UNIQUE,
    role_id              TEXT    NOT NULL UNIQUE,
    path                 TEXT    NOT NULL,
    assume_role_policy   TEXT    NOT NULL,
    description          TEXT,
    max_session_duration BIGINT  NOT NULL,
    created_ms           BIGINT  NOT NULL
);
CREATE TABLE iam_users (
    name_key   TEXT   NOT NULL PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id    TEXT   NOT NULL UNIQUE,
    path       TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE iam_access_keys (
    access_key_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_key          TEXT   NOT NULL,
    secret_access_key TEXT   NOT NULL,
    status            TEXT   NOT NULL,
    created_ms        BIGINT NOT NULL
);
CREATE INDEX iam_access_keys_by_user ON iam_access_keys (user_key, access_key_id);
-- `entity` is 'role' or 'user'; `entity_key` that entity's `name_key`.
CREATE TABLE iam_inline_policies (
    entity      TEXT NOT NULL,
    entity_key  TEXT NOT NULL,
    policy_name TEXT COLLATE "C" NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (entity, entity_key, policy_name)
);
