//! The whole control-plane flow with boto3 (tests/python/flow.py), on both registry backends:
//! CA registration with every refusal, device certificates, policies, things, topic rules, tags,
//! pagination.

mod common;

use common::{Backend, Server};

#[test]
fn boto3_flow_on_sqlite() {
    let server = Server::start(Backend::Sqlite);
    println!("{}", server.python("flow.py", &[]));
}

#[test]
fn boto3_flow_on_postgres() {
    let server = Server::start(Backend::Postgres);
    println!("{}", server.python("flow.py", &[]));
}
