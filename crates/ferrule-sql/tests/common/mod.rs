//! Shared test fixtures: a deterministic environment, a standard message, and a runner that
//! turns any outcome into one comparable string.
#![allow(dead_code)]

use ferrule_sql::{Env, Message, Output, SqlVersion, Statement};

/// UUIDs count up from 1; `rand()` is always 0.25.
#[derive(Default)]
pub(crate) struct TestEnv {
    pub(crate) uuids: u64,
}

impl Env for TestEnv {
    fn new_uuid(&mut self) -> String {
        self.uuids += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uuids)
    }

    fn random(&mut self) -> f64 {
        0.25
    }
}

pub(crate) const TOPIC: &str = "things/dev1/telemetry";
pub(crate) const TIMESTAMP: i64 = 1_700_000_000_000;

/// The payload most cases run against.
pub(crate) const PAYLOAD: &str = r#"{"color":"red","temperature":50,"t":22.5,"s":"12","b":true,"n":null,"arr":[1,2,3],"o":{"a":{"b":[10,{"c":"deep"}]}},"e":[{"n":"temperature","v":22.5},{"n":"light","v":135}],"str":" Hi There ","value":7,"w":10.0}"#;

/// A message from client `dev1` with certificate `abc123certid`.
pub(crate) fn message<'a>(topic: &'a str, payload: &'a [u8]) -> Message<'a> {
    Message {
        topic,
        payload,
        client_id: Some("dev1"),
        principal: Some("abc123certid"),
        timestamp_ms: TIMESTAMP,
        trace_id: Some("trace-1"),
        account_id: "123456789012",
    }
}

/// The outcome of parsing and evaluating `sql` on `msg`, as one string:
/// `json:<text>`, `raw:<bytes, lossy>`, `none` (WHERE not true), `parse:<error>` or
/// `eval:<error>`.
pub(crate) fn outcome(sql: &str, version: SqlVersion, msg: &Message<'_>) -> String {
    let stmt = match Statement::parse(sql, version) {
        Ok(s) => s,
        Err(e) => return format!("parse:{e}"),
    };
    match stmt.evaluate(msg, &mut TestEnv::default()) {
        Ok(None) => "none".to_owned(),
        Ok(Some(Output::Json(b))) => format!("json:{}", String::from_utf8_lossy(&b)),
        Ok(Some(Output::Raw(b))) => format!("raw:{}", String::from_utf8_lossy(&b)),
        Err(e) => format!("eval:{e}"),
    }
}
