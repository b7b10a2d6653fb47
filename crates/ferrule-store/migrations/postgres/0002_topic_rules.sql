-- Topic rules (the rules engine's registry). migrations/sqlite/0003_topic_rules.sql is the
-- same table in SQLite's dialect; keep the two in step. Text keys use the "C" collation, as in
-- 0001_registry.sql, so pages sort byte-wise as on SQLite.
--
-- `payload` is the rule's TopicRulePayload as JSON text, as the control plane accepted it
-- (without `ruleDisabled`, which is the `disabled` column); the registry never reads it.
-- `topic_pattern` is the topic filter of the SQL's FROM clause, for ListTopicRules' `topic`
-- filter and for the broker to find the rules a message may match.
CREATE TABLE topic_rules (
    name          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    topic_pattern TEXT COLLATE "C" NOT NULL,
    payload       TEXT    NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_ms    BIGINT  NOT NULL
);
CREATE INDEX topic_rules_by_topic ON topic_rules (topic_pattern, name);
