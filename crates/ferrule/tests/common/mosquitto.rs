//! Thin wrappers around the real `mosquitto_pub` and `mosquitto_sub` (2.0).

use std::ffi::OsString;
use std::process::{Command, Output};
use std::time::Duration;

use super::{Bg, CLIENT_TIMEOUT, Cert, Server, require_program, run, run_ok};

/// How a mosquitto client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Net {
    /// `mqtts` listener, `--cafile server-ca.pem -h localhost`, presenting the server's default
    /// device certificate (`--cert --key`).
    Tls,
    /// `mqtt` listener, `-h 127.0.0.1`.
    Tcp,
}

/// Asserts that the mosquitto clients (and `stdbuf`, which [`Sub`] needs) are installed.
pub(crate) fn require_mosquitto() {
    require_program("mosquitto_sub", "mosquitto-clients");
    require_program("mosquitto_pub", "mosquitto-clients");
    require_program("stdbuf", "coreutils");
}

/// The protocol version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mqtt {
    V311,
    V5,
}

impl Mqtt {
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Mqtt::V311 => "mqttv311",
            Mqtt::V5 => "mqttv5",
        }
    }
}

/// `-h`, `-p`, `-V` and the TLS flags for a mosquitto client. [`Net::Tls`] presents the
/// server's default device certificate.
pub(crate) fn mosq_conn_args(server: &Server, net: Net, v: Mqtt) -> Vec<OsString> {
    match net {
        Net::Tls => mosq_tls_args(server, Some(server.default_device()), v),
        Net::Tcp => vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            server.mqtt().port().to_string().into(),
            "-V".into(),
            v.flag().into(),
        ],
    }
}

/// `-h localhost -p MQTTS --cafile server-ca.pem [--cert C --key K] -V v`: a mosquitto client
/// on the `mqtts` listener presenting `cert` (its file may hold a chain), or no certificate.
pub(crate) fn mosq_tls_args(server: &Server, cert: Option<&Cert>, v: Mqtt) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "-h".into(),
        "localhost".into(),
        "-p".into(),
        server.mqtts().port().to_string().into(),
        "--cafile".into(),
        server.ca().into_os_string(),
    ];
    if let Some(c) = cert {
        a.extend([
            OsString::from("--cert"),
            c.cert.clone().into_os_string(),
            OsString::from("--key"),
            c.key.clone().into_os_string(),
        ]);
    }
    a.extend(["-V".into(), v.flag().into()]);
    a
}

/// `mosquitto_pub` on the `mqtts` listener with `cert` (or none), publishing `payload` to
/// `topic` at QoS 1; returns its output whatever happened.
pub(crate) fn mosquitto_pub_as(
    server: &Server,
    cert: Option<&Cert>,
    v: Mqtt,
    topic: &str,
    payload: &str,
    timeout: Duration,
) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_tls_args(server, cert, v))
        .args(["-t", topic, "-m", payload, "-q", "1"]);
    run(&mut cmd, timeout)
}

/// `mosquitto_sub` with stdout line-buffered (it block-buffers into a pipe, which would hold
/// back the "Subscribed" line until it exits).
pub(crate) fn mosquitto_sub_line_buffered() -> Command {
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub"]);
    cmd
}

/// The `-F` format [`Sub`] uses: a fixed prefix, then fields separated by `|`, payload last.
pub(crate) const SUB_FORMAT: &str = "MSG|%t|%q|%r|%p";

/// One message as printed by [`Sub`] with [`SUB_FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) topic: String,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) payload: String,
}

/// A [`Msg`] from borrowed parts, for comparisons.
pub(crate) fn msg(topic: &str, qos: u8, retain: bool, payload: &str) -> Msg {
    Msg {
        topic: topic.to_owned(),
        qos,
        retain,
        payload: payload.to_owned(),
    }
}

impl Msg {
    fn parse(line: &str) -> Msg {
        let rest = line
            .strip_prefix("MSG|")
            .unwrap_or_else(|| panic!("not a message line: {line:?}"));
        let mut f = rest.splitn(4, '|');
        let mut next = || {
            f.next()
                .unwrap_or_else(|| panic!("short message line: {line:?}"))
        };
        let topic = next().to_owned();
        let qos = next()
            .parse()
            .unwrap_or_else(|e| panic!("bad qos in {line:?}: {e}"));
        let retain = next() == "1";
        let payload = next().to_owned();
        Msg {
            topic,
            qos,
            retain,
            payload,
        }
    }
}

/// A `mosquitto_sub -d` in the background, ready once the server has acknowledged its
/// subscriptions.
pub(crate) struct Sub {
    pub(crate) proc: Bg,
}

impl Sub {
    /// Subscribes to `topics` at `qos` with [`SUB_FORMAT`] output; `extra` goes before the topics.
    pub(crate) fn start(
        server: &Server,
        net: Net,
        v: Mqtt,
        qos: u8,
        topics: &[&str],
        extra: &[&str],
    ) -> Sub {
        Sub::start_fmt(server, net, v, qos, topics, extra, SUB_FORMAT)
    }

    /// Like [`Sub::start`] with a custom `-F` format, which must start with `MSG|`.
    pub(crate) fn start_fmt(
        server: &Server,
        net: Net,
        v: Mqtt,
        qos: u8,
        topics: &[&str],
        extra: &[&str],
        format: &str,
    ) -> Sub {
        assert!(format.starts_with("MSG|"));
        let mut cmd = mosquitto_sub_line_buffered();
        cmd.args(mosq_conn_args(server, net, v))
            .args(["-d", "-q", &qos.to_string(), "-F", format])
            .args(extra);
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut proc = Bg::spawn(&mut cmd);
        let acks = topics.len();
        // mosquitto_sub sends all topics in one SUBSCRIBE and prints one "Subscribed" line.
        let line = proc.line(CLIENT_TIMEOUT, "a SUBACK", |l| {
            l.starts_with("Subscribed (mid:")
        });
        let granted = line
            .split(':')
            .nth(2)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            granted.split(',').count(),
            acks,
            "SUBACK for {topics:?}: {line}"
        );
        Sub { proc }
    }

    /// The next message, parsed; panics after `timeout`.
    pub(crate) fn next(&mut self, timeout: Duration) -> Msg {
        Msg::parse(
            &self
                .proc
                .line(timeout, "a message", |l| l.starts_with("MSG|")),
        )
    }

    /// The next raw message line (for custom formats); panics after `timeout`.
    pub(crate) fn next_raw(&mut self, timeout: Duration) -> String {
        self.proc
            .line(timeout, "a message", |l| l.starts_with("MSG|"))
    }

    /// The next message if one comes within `timeout`.
    pub(crate) fn try_next(&mut self, timeout: Duration) -> Option<Msg> {
        self.proc
            .try_line(timeout, |l| l.starts_with("MSG|"))
            .map(|l| Msg::parse(&l))
    }

    /// The first message not yet taken that `pred` accepts, if one is there or comes within
    /// `timeout`; other messages stay available.
    pub(crate) fn try_next_where(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        self.proc
            .try_line(timeout, |l| l.starts_with("MSG|") && pred(&Msg::parse(l)))
            .map(|l| Msg::parse(&l))
    }

    /// The next message on exactly `topic`; panics (with everything seen) after `timeout`.
    pub(crate) fn next_on(&mut self, topic: &str, timeout: Duration) -> Msg {
        match self.try_next_where(timeout, |m| m.topic == topic) {
            Some(m) => m,
            None => panic!(
                "no message on {topic} within {timeout:?}; seen:\n{}",
                self.proc.seen().join("\n")
            ),
        }
    }

    /// Every message received so far, taken or not, after collecting what arrives in `settle`.
    pub(crate) fn all_seen(&mut self, settle: Duration) -> Vec<Msg> {
        self.proc.drain(settle);
        self.proc
            .seen()
            .iter()
            .filter(|l| l.starts_with("MSG|"))
            .map(|l| Msg::parse(l))
            .collect()
    }
}

/// Runs `mosquitto_pub` to completion and asserts it succeeded. `extra` holds `-r`, `-D …` etc.
pub(crate) fn publish(
    server: &Server,
    net: Net,
    v: Mqtt,
    topic: &str,
    payload: &str,
    qos: u8,
    extra: &[&str],
) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_conn_args(server, net, v))
        .args(["-t", topic, "-m", payload, "-q", &qos.to_string()])
        .args(extra);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

/// Runs `mosquitto_pub` with the connection flags and `args` (topic, message, options) and
/// asserts it succeeded.
pub(crate) fn pub_args(server: &Server, net: Net, v: Mqtt, args: &[&str]) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_conn_args(server, net, v)).args(args);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

/// `mosquitto_sub` that stops after `count` messages or `secs` seconds; returns its output.
pub(crate) fn receive(
    server: &Server,
    net: Net,
    v: Mqtt,
    count: usize,
    secs: u32,
    extra: &[&str],
) -> Output {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(mosq_conn_args(server, net, v))
        .args([
            "-F",
            SUB_FORMAT,
            "-C",
            &count.to_string(),
            "-W",
            &secs.to_string(),
        ])
        .args(extra);
    run(&mut cmd, Duration::from_secs(u64::from(secs) + 10))
}

/// The messages in the output of [`receive`].
pub(crate) fn messages(out: &Output) -> Vec<Msg> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("MSG|"))
        .map(Msg::parse)
        .collect()
}
