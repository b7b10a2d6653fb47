//! Differential test: the same boto3 calls against moto's server mode and against Ferrule,
//! comparing response shapes; the places where Ferrule deliberately follows AWS instead of
//! moto are an explicit allow-list in tests/python/differential.py, printed here.

mod common;

use common::{Backend, Server};

#[test]
fn response_shapes_match_moto_except_where_ferrule_follows_aws() {
    let server = Server::start(Backend::Sqlite);
    let report = server.python("differential.py", &[]);
    println!("{report}");
    assert!(report.contains("no unexpected differences"), "{report}");
}
