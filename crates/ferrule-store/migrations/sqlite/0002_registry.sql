-- The device registry: account settings, CA and device certificates, policies, things, tags.
-- migrations/postgres/0001_registry.sql is the same schema in PostgreSQL's dialect; keep the
-- two in step (same tables, columns, order of columns). Times are milliseconds since the
-- Unix epoch; enums are stored as AWS spells them ('ACTIVE', 'SNI_ONLY', ...).

-- Values created once per server and stable afterwards (DescribeEndpoint prefix, generated
-- admin credentials).
CREATE TABLE registry_settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- At most one row: the account's CA registration code.
CREATE TABLE registration_code (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    code TEXT    NOT NULL
);

CREATE TABLE ca_certificates (
    id                  TEXT   NOT NULL PRIMARY KEY,
    pem                 TEXT   NOT NULL,
    subject_der         BLOB   NOT NULL,
    status              TEXT   NOT NULL,
    auto_registration   TEXT   NOT NULL,
    mode                TEXT   NOT NULL,
    registration_config TEXT,
    owned_by            TEXT   NOT NULL,
    created_ms          BIGINT NOT NULL,
    modified_ms         BIGINT NOT NULL,
    customer_version    BIGINT NOT NULL,
    generation_id       TEXT   NOT NULL,
    not_before_ms       BIGINT NOT NULL,
    not_after_ms        BIGINT NOT NULL
);
CREATE INDEX ca_certificates_by_creation ON ca_certificates (created_ms, id);
CREATE INDEX ca_certificates_by_subject ON ca_certificates (subject_der);

CREATE TABLE certificates (
    id               TEXT   NOT NULL PRIMARY KEY,
    pem              TEXT   NOT NULL,
    ca_id            TEXT   REFERENCES ca_certificates (id),
    issuer_der       BLOB   NOT NULL,
    status           TEXT   NOT NULL,
    mode             TEXT   NOT NULL,
    owned_by         TEXT   NOT NULL,
    created_ms       BIGINT NOT NULL,
    modified_ms      BIGINT NOT NULL,
    customer_version BIGINT NOT NULL,
    generation_id    TEXT   NOT NULL,
    not_before_ms    BIGINT NOT NULL,
    not_after_ms     BIGINT NOT NULL
);
CREATE INDEX certificates_by_creation ON certificates (created_ms, id);
CREATE INDEX certificates_by_ca ON certificates (ca_id, created_ms, id);

-- `next_version_id` makes version ids count up without reuse after deletions.
CREATE TABLE policies (
    name               TEXT   NOT NULL PRIMARY KEY,
    default_version_id BIGINT NOT NULL,
    next_version_id    BIGINT NOT NULL,
    created_ms         BIGINT NOT NULL,
    modified_ms        BIGINT NOT NULL,
    generation_id      TEXT   NOT NULL
);

CREATE TABLE policy_versions (
    policy_name TEXT   NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
    version_id  BIGINT NOT NULL,
    document    TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (policy_name, version_id)
);

CREATE TABLE policy_attachments (
    policy_name TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
    target      TEXT NOT NULL,
    PRIMARY KEY (policy_name, target)
);
CREATE INDEX policy_attachments_by_target ON policy_attachments (target, policy_name);

CREATE TABLE things (
    name               TEXT   NOT NULL PRIMARY KEY,
    thing_id           TEXT   NOT NULL UNIQUE,
    thing_type_name    TEXT,
    version            BIGINT NOT NULL,
    billing_group_name TEXT,
    created_ms         BIGINT NOT NULL
);
CREATE INDEX things_by_type ON things (thing_type_name, name);

CREATE TABLE thing_attributes (
    thing_name TEXT NOT NULL REFERENCES things (name) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (thing_name, key)
);
CREATE INDEX thing_attributes_by_value ON thing_attributes (key, value, thing_name);

-- `exclusive`: attached with EXCLUSIVE_THING, so no other thing may take the principal.
CREATE TABLE thing_principals (
    thing_name TEXT    NOT NULL REFERENCES things (name) ON DELETE CASCADE,
    principal  TEXT    NOT NULL,
    exclusive  BOOLEAN NOT NULL,
    PRIMARY KEY (thing_name, principal)
);
CREATE INDEX thing_principals_by_principal ON thing_principals (principal, thing_name);

CREATE TABLE resource_tags (
    arn   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
);
