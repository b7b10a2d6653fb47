//! MQTT over TLS, WebSocket and WebSocket over TLS, next to plain TCP.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Client, Opts, TestBroker, WAIT, config, spec, text};
use ferrule_broker::{BrokerError, ListenerKind};
use ferrule_mqtt::{Packet, QoS, ReasonCode};
use ferrule_pki::{DevPki, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// A server config from a throwaway CA, and that CA's certificate for clients to trust.
fn test_ca_tls() -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
    let ca = TestCa::new("Ferrule broker tests").unwrap();
    let (cert, key) = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    (server_config(chain, key), ca.cert_der())
}

/// A server config from the development PKI `ferrule serve` creates, and its CA certificate.
fn dev_pki_tls(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
    let pki = DevPki::load_or_create(dir).unwrap();
    let ca = CertificateDer::from_pem_slice(pki.ca_cert_pem.as_bytes()).unwrap();
    (
        server_config(pki.server_chain().unwrap(), pki.server_key().unwrap()),
        ca,
    )
}

async fn tls_connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    name: &str,
) -> std::io::Result<Box<dyn common::Stream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await??;
    Ok(Box::new(tls))
}

/// Publishes from `a` and checks `b` receives, then the other way round.
async fn exchange(a: &mut Client, b: &mut Client, topic: &str) {
    a.subscribe(&format!("{topic}/a"), QoS::AtLeastOnce).await;
    b.subscribe(&format!("{topic}/b"), QoS::AtLeastOnce).await;
    a.publish(&format!("{topic}/b"), "from a", QoS::AtLeastOnce, false)
        .await;
    let m = b.recv_publish().await;
    assert_eq!(text(&m), "from a");
    b.ack(&m).await;
    b.publish(&format!("{topic}/a"), "from b", QoS::ExactlyOnce, false)
        .await;
    let m = a.recv_publish().await;
    assert_eq!(text(&m), "from b");
    a.ack(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_tls() {
    let b = TestBroker::start(config()).await;
    let (tls, ca) = test_ca_tls();
    let addr = b
        .broker
        .listen(spec(ListenerKind::Mqtts, Some(tls)))
        .await
        .unwrap();

    let mut secure = Client::over(tls_connect(addr, &ca, "localhost").await.unwrap());
    assert_eq!(
        secure.handshake(Opts::v5("secure")).await.reason,
        ReasonCode::SUCCESS
    );
    let mut plain = b.client(Opts::v3("plain")).await;
    exchange(&mut secure, &mut plain, "tls").await;

    // A client that does not trust the CA fails the handshake; the listener carries on.
    let other = TestCa::new("someone else").unwrap();
    assert!(
        tls_connect(addr, &other.cert_der(), "localhost")
            .await
            .is_err()
    );
    // So does a client that skips TLS altogether.
    let mut raw = Client::tcp(addr).await;
    raw.send(Packet::PingReq).await;
    raw.expect_eof().await;

    let mut again = Client::over(tls_connect(addr, &ca, "127.0.0.1").await.unwrap());
    assert_eq!(
        again.handshake(Opts::v3("again")).await.reason,
        ReasonCode::SUCCESS
    );
    exchange(&mut again, &mut secure, "tls2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websocket() {
    let b = TestBroker::start(config()).await;
    let addr = b.broker.listen(spec(ListenerKind::Ws, None)).await.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, resp) = Client::websocket(Box::new(tcp), &format!("ws://{addr}/mqtt")).await;
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    assert_eq!(
        ws.handshake(Opts::v5("ws")).await.reason,
        ReasonCode::SUCCESS
    );
    let mut plain = b.client(Opts::v5("plain")).await;
    exchange(&mut ws, &mut plain, "ws").await;
    ws.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_need_not_align_with_packets() {
    let b = TestBroker::start(config()).await;
    let addr = b.broker.listen(spec(ListenerKind::Ws, None)).await.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = Client::websocket(Box::new(tcp), &format!("ws://{addr}/")).await;
    // CONNECT split over three frames, then SUBSCRIBE and PINGREQ in one frame.
    let mut connect = bytes::BytesMut::new();
    ws.protocol = ferrule_mqtt::ProtocolVersion::V311;
    let c = Opts::v3("frames");
    ferrule_mqtt::encode(
        &Packet::Connect(ferrule_mqtt::Connect {
            protocol: c.protocol,
            clean_start: true,
            keep_alive: 30,
            client_id: c.client_id,
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        }),
        c.protocol,
        &mut connect,
    )
    .unwrap();
    ws.send_raw(&connect[..3]).await;
    ws.send_raw(&connect[3..7]).await;
    ws.send_raw(&connect[7..]).await;
    assert!(matches!(ws.recv().await, Packet::ConnAck(a) if a.reason == ReasonCode::SUCCESS));
    let mut two = bytes::BytesMut::new();
    let sub = ferrule_mqtt::Subscribe {
        packet_id: 1,
        filters: vec![ferrule_mqtt::Subscription::new(
            common::filter("f"),
            QoS::AtMostOnce,
        )],
        properties: Default::default(),
    };
    ferrule_mqtt::encode(&Packet::Subscribe(sub), ws.protocol, &mut two).unwrap();
    ferrule_mqtt::encode(&Packet::PingReq, ws.protocol, &mut two).unwrap();
    ws.send_raw(&two).await;
    assert!(matches!(ws.recv().await, Packet::SubAck(_)));
    assert!(matches!(ws.recv().await, Packet::PingResp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subprotocol_negotiation() {
    let b = TestBroker::start(config()).await;
    let addr = b.broker.listen(spec(ListenerKind::Ws, None)).await.unwrap();

    // Offering only something else is refused with 400.
    let mut req = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
    let tcp = TcpStream::connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected HTTP 400, got {:?}", other.map(|(_, r)| r)),
    }
    // Offering several, "mqtt" among them, picks "mqtt".
    let mut req = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("chat, mqtt"),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (_ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    // Offering none is accepted, without choosing one.
    let req = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    let tcp: Box<dyn common::Stream> = Box::new(TcpStream::connect(addr).await.unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    let mut c = Client::new_ws(ws);
    assert_eq!(
        c.handshake(Opts::v5("noproto")).await.reason,
        ReasonCode::SUCCESS
    );
    // Plain HTTP without an upgrade is turned away and the listener keeps serving.
    let mut raw = Client::tcp(addr).await;
    raw.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    raw.expect_eof().await;
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_secure_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(config()).await;
    let (tls, ca) = dev_pki_tls(dir.path());
    let addr = b
        .broker
        .listen(spec(ListenerKind::Wss, Some(tls)))
        .await
        .unwrap();
    let stream = tls_connect(addr, &ca, "localhost").await.unwrap();
    let (mut wss, resp) =
        Client::websocket(stream, &format!("wss://localhost:{}/mqtt", addr.port())).await;
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    assert_eq!(
        wss.handshake(Opts::v3("wss")).await.reason,
        ReasonCode::SUCCESS
    );
    let mut plain = b.client(Opts::v5("plain")).await;
    exchange(&mut wss, &mut plain, "wss").await;
    wss.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_need_a_tls_config() {
    let b = TestBroker::start(config()).await;
    for kind in [ListenerKind::Mqtts, ListenerKind::Wss] {
        match b.broker.listen(spec(kind, None)).await {
            Err(BrokerError::MissingTls(k)) => assert_eq!(k, kind),
            other => panic!(
                "expected MissingTls, got {:?}",
                other.map_err(|e| e.to_string())
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broker_serves_every_listener_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(config()).await;
    let (tls, ca) = dev_pki_tls(dir.path());
    let mqtts = b
        .broker
        .listen(spec(ListenerKind::Mqtts, Some(tls.clone())))
        .await
        .unwrap();
    let ws = b.broker.listen(spec(ListenerKind::Ws, None)).await.unwrap();
    let wss = b
        .broker
        .listen(spec(ListenerKind::Wss, Some(tls)))
        .await
        .unwrap();

    let mut sub = b.client(Opts::v5("sub")).await;
    sub.subscribe("all/+", QoS::AtLeastOnce).await;
    let mut clients = Vec::new();
    let mut c = Client::over(tls_connect(mqtts, &ca, "localhost").await.unwrap());
    c.handshake(Opts::v5("mqtts")).await;
    clients.push(("mqtts", c));
    let (mut c, _) = Client::websocket(
        Box::new(TcpStream::connect(ws).await.unwrap()),
        &format!("ws://{ws}/"),
    )
    .await;
    c.handshake(Opts::v5("ws")).await;
    clients.push(("ws", c));
    let s = tls_connect(wss, &ca, "localhost").await.unwrap();
    let (mut c, _) = Client::websocket(s, &format!("wss://localhost:{}/", wss.port())).await;
    c.handshake(Opts::v5("wss")).await;
    clients.push(("wss", c));
    for (name, c) in &mut clients {
        c.publish(&format!("all/{name}"), name, QoS::AtLeastOnce, false)
            .await;
        let m = sub.recv_publish().await;
        assert_eq!(text(&m), *name);
        sub.ack(&m).await;
    }
    assert_eq!(b.broker.stats().connections, 4);
}
