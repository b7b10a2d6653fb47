#!/usr/bin/env python3
"""Interop checks with paho-mqtt 2.x (CallbackAPIVersion.VERSION2) against a running `ferrule serve`.

Run by crates/ferrule/tests/paho.rs, which starts the server and passes its addresses:

    paho_interop.py --ca DATA_DIR/server-ca.pem [--cert DEVICE.pem --key DEVICE.key] \
        --mqtt 127.0.0.1:P --mqtts 127.0.0.1:P --ws 127.0.0.1:P --wss 127.0.0.1:P CHECK [CHECK ...]

A CHECK is SCENARIO:VERSION:TRANSPORT[:ARG...], VERSION is 311 or 5 and TRANSPORT is tcp, tls,
ws or wss. TLS transports connect to "localhost", verify the server against --ca and present the
device certificate --cert/--key (the mqtts listener requires a registered one); WebSocket ones
use the path "/". Each check prints "PASS <check>" or "FAIL <check>: <why>" (plus detail
lines starting with two spaces). Exit status: 0 all passed, 1 some failed, 2 bad usage,
3 paho-mqtt 2.x is not installed.

Scenarios:
  pubsub              QoS 0/1/2 publish and subscribe, plus a 300 kB QoS 1 payload.
  retained            set, replace, clear; MQTT 5 retain handling and retain-as-published.
  persistent          a persistent session (3.1.1 clean_session=False, 5 clean_start=False with
                      a session expiry) gets the QoS 1 messages published while it was away.
  properties          MQTT 5: user properties, response topic, correlation data, content type,
                      payload format, message expiry, subscription identifier, topic alias, and
                      a request/response round trip.
  shared              MQTT 5 shared subscriptions ($share/GROUP/FILTER).
  session-subscribe:V:T:ID:FILTER
                      connect as ID with a persistent session, subscribe FILTER at QoS 1 and
                      disconnect.
  session-receive:V:T:ID:N
                      reconnect as ID (persistent), expect a present session and N messages;
                      prints "GOT <topic> <qos> <payload>" for each.
  shutdown-wait:V:T   connect and wait for the server's DISCONNECT. When every check given is a
                      shutdown-wait, all connect first, then "READY" is printed, then each
                      prints "DISCONNECT <check> reason=<code>" and passes if the code is 0x8B
                      (server shutting down); a 3.1.1 client passes once it is disconnected.
"""

import argparse
import itertools
import os
import queue
import sys
import threading
import time
import traceback

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as e:
    print(f"paho-mqtt 2.x is required: python3 -m pip install 'paho-mqtt>=2,<3' ({e})", file=sys.stderr)
    sys.exit(3)

if not paho.mqtt.__version__.startswith("2."):
    print(
        f"paho-mqtt 2.x is required, found {paho.mqtt.__version__}: python3 -m pip install 'paho-mqtt>=2,<3'",
        file=sys.stderr,
    )
    sys.exit(3)

TIMEOUT = 10.0
"""Bound on every single wait."""

SERVER_SHUTTING_DOWN = 0x8B

ADDRS = {}
CA = None
CERT = None
KEY = None
_ids = itertools.count()


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def split_addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


class Peer:
    """One paho client with its network loop in a thread and its events as queues."""

    live = []

    def __init__(self, version, transport, client_id=None, clean=True, session_expiry=None):
        self.version = version
        self.transport = transport
        self.client_id = client_id or unique(f"paho{version}{transport}")
        self.clean = clean
        self.session_expiry = session_expiry
        self.v5 = version == "5"
        kwargs = dict(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            transport="websockets" if transport in ("ws", "wss") else "tcp",
            reconnect_on_failure=False,
        )
        if not self.v5:
            kwargs["clean_session"] = clean
        c = mqtt.Client(**kwargs)
        if transport in ("ws", "wss"):
            c.ws_set_options(path="/")
        if transport in ("tls", "wss"):
            c.tls_set(ca_certs=CA, certfile=CERT, keyfile=KEY)
        self.connack = queue.Queue()
        self.messages = queue.Queue()
        self.subacks = {}
        self.suback_ready = threading.Condition()
        self.disconnects = queue.Queue()
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_disconnect = self._on_disconnect
        self.client = c

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack.put((flags.session_present, reason_code, properties))

    def _on_message(self, client, userdata, msg):
        self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.suback_ready:
            self.subacks[mid] = reason_codes
            self.suback_ready.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnects.put(reason_code)

    def connect(self):
        """Connects and waits for CONNACK; returns session_present."""
        key = {"tcp": "mqtt", "tls": "mqtts", "ws": "ws", "wss": "wss"}[self.transport]
        expect(key in ADDRS, f"no --{key} address given")
        _, port = ADDRS[key]
        host = "localhost" if self.transport in ("tls", "wss") else ADDRS[key][0]
        kwargs = {}
        if self.v5:
            kwargs["clean_start"] = self.clean
            props = Properties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                props.SessionExpiryInterval = self.session_expiry
            kwargs["properties"] = props
        self.client.connect(host, port, keepalive=30, **kwargs)
        self.client.loop_start()
        Peer.live.append(self)
        try:
            present, rc, _ = self.connack.get(timeout=TIMEOUT)
        except queue.Empty:
            raise CheckFailed(f"{self.client_id}: no CONNACK within {TIMEOUT}s over {self.transport}")
        expect(not rc.is_failure, f"{self.client_id}: CONNECT refused: {rc}")
        return bool(present)

    def subscribe(self, topic, qos=1, options=None, properties=None):
        if options is not None:
            result, mid = self.client.subscribe(topic, options=options, properties=properties)
        else:
            result, mid = self.client.subscribe(topic, qos, properties=properties)
        expect(result == mqtt.MQTT_ERR_SUCCESS, f"subscribe({topic}) failed to send: {result}")
        deadline = time.monotonic() + TIMEOUT
        with self.suback_ready:
            while mid not in self.subacks:
                left = deadline - time.monotonic()
                expect(left > 0, f"no SUBACK for {topic} within {TIMEOUT}s")
                self.suback_ready.wait(left)
            codes = self.subacks.pop(mid)
        expect(len(codes) == 1 and not codes[0].is_failure, f"subscription to {topic} refused: {codes}")
        return codes[0].value

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        expect(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish({topic}) failed to send: {info.rc}")
        info.wait_for_publish(timeout=TIMEOUT)
        expect(info.is_published(), f"publish({topic}, qos {qos}) not acknowledged within {TIMEOUT}s")

    def next(self, timeout=TIMEOUT, what="a message"):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise CheckFailed(f"{self.client_id}: no {what} within {timeout}s")

    def disconnect(self):
        self.client.disconnect()
        try:
            self.disconnects.get(timeout=TIMEOUT)
        except queue.Empty:
            pass
        self.client.loop_stop()
        if self in Peer.live:
            Peer.live.remove(self)

    @classmethod
    def stop_all(cls):
        for p in list(cls.live):
            try:
                p.client.disconnect()
                p.client.loop_stop()
            except Exception:
                pass
        cls.live.clear()


def expect_msg(m, topic, payload, qos, retain=False):
    got = (m.topic, bytes(m.payload), m.qos, bool(m.retain))
    want = (topic, payload if isinstance(payload, bytes) else payload.encode(), qos, retain)
    expect(got == want, f"got (topic, payload, qos, retain) {short(got)}, expected {short(want)}")


def short(t):
    return tuple((x[:40] + b"..." if isinstance(x, bytes) and len(x) > 40 else x) for x in t)


# ----------------------------------------------------------------------------------------------
# Scenarios


def pubsub(version, transport):
    base = unique(f"pubsub/{version}/{transport}")
    sub = Peer(version, transport)
    sub.connect()
    expect(sub.subscribe(f"{base}/#", 2) == 2, "QoS 2 subscription not granted at 2")
    pub = Peer(version, transport)
    pub.connect()
    for q in (0, 1, 2):
        pub.publish(f"{base}/q{q}", f"paho qos {q}", qos=q)
    for q in (0, 1, 2):
        expect_msg(sub.next(), f"{base}/q{q}", f"paho qos {q}", q)
    big = bytes(range(256)) * 1200  # 300 kB: spans many TLS records and a large WebSocket frame
    pub.publish(f"{base}/big", big, qos=1)
    expect_msg(sub.next(), f"{base}/big", big, 1)
    pub.disconnect()
    sub.disconnect()


def retained(version, transport):
    base = unique(f"retained/{version}/{transport}")
    topic = f"{base}/state"
    pub = Peer(version, transport)
    pub.connect()
    pub.publish(topic, "v1", qos=1, retain=True)
    pub.publish(topic, "v2", qos=1, retain=True)

    s = Peer(version, transport)
    s.connect()
    s.subscribe(topic, 2)
    expect_msg(s.next(what="the retained message"), topic, "v2", 1, retain=True)
    # Established subscription: retain flag clear (3.1.1 and MQTT 5 without retain-as-published).
    pub.publish(topic, "v3", qos=1, retain=True)
    expect_msg(s.next(), topic, "v3", 1, retain=False)
    s.disconnect()

    if version == "5":
        # Retain handling 2: no retained messages at subscribe time.
        s = Peer(version, transport)
        s.connect()
        s.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
        pub.publish(topic, "marker", qos=1)
        expect_msg(s.next(), topic, "marker", 1)
        s.disconnect()
        # Retain as published: live retained messages keep their flag.
        s = Peer(version, transport)
        s.connect()
        s.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        expect_msg(s.next(what="the retained message"), topic, "v3", 1, retain=True)
        pub.publish(topic, "v4", qos=1, retain=True)
        expect_msg(s.next(), topic, "v4", 1, retain=True)
        s.disconnect()

    # Clear with an empty retained payload.
    pub.publish(topic, b"", qos=1, retain=True)
    s = Peer(version, transport)
    s.connect()
    s.subscribe(topic, 1)
    pub.publish(topic, "after clear", qos=1)
    expect_msg(s.next(), topic, "after clear", 1)
    s.disconnect()
    pub.disconnect()


def persistent_peer(version, transport, client_id):
    if version == "5":
        return Peer(version, transport, client_id, clean=False, session_expiry=3600)
    return Peer(version, transport, client_id, clean=False)


def persistent(version, transport):
    base = unique(f"persist/{version}/{transport}")
    cid = unique(f"persist-{version}-{transport}")
    a = persistent_peer(version, transport, cid)
    a.connect()
    a.subscribe(f"{base}/#", 1)
    a.disconnect()

    pub = Peer(version, transport)
    pub.connect()
    for i in range(3):
        pub.publish(f"{base}/m{i}", f"queued {i}", qos=1)

    b = persistent_peer(version, transport, cid)
    present = b.connect()
    expect(present, "session_present was 0 on reconnecting to a persistent session")
    for i in range(3):
        expect_msg(b.next(what=f"queued message {i}"), f"{base}/m{i}", f"queued {i}", 1)
    # The subscription survived too. (Whether QoS 0 is queued offline is checked in
    # mosquitto_clients.rs, which can wait for the server to log the disconnect: from here
    # there is no telling when the server has processed our DISCONNECT.)
    pub.publish(f"{base}/live", "live", qos=1)
    expect_msg(b.next(), f"{base}/live", "live", 1)
    b.disconnect()
    pub.disconnect()

    # A clean start throws the session away.
    if version == "5":
        c = Peer(version, transport, cid, clean=True, session_expiry=0)
    else:
        c = Peer(version, transport, cid, clean=True)
    expect(not c.connect(), "session_present was 1 after a clean start")
    c.disconnect()


def properties(version, transport):
    expect(version == "5", "properties needs MQTT 5")
    base = unique(f"props/{transport}")
    sub = Peer("5", transport)
    sub.connect()
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 42
    sub.subscribe(f"{base}/data/#", 1, properties=sp)
    pub = Peer("5", transport)
    pub.connect()

    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
    p.ResponseTopic = f"{base}/reply"
    p.CorrelationData = b"\x00\x01corr\xff"
    p.ContentType = "application/json"
    p.PayloadFormatIndicator = 1
    p.MessageExpiryInterval = 60
    pub.publish(f"{base}/data/x", '{"v": 1}', qos=1, properties=p)
    m = sub.next()
    expect_msg(m, f"{base}/data/x", '{"v": 1}', 1)
    got = m.properties
    expect(got is not None, "no properties on the delivered message")
    expect(getattr(got, "UserProperty", None) == [("a", "1"), ("b", "2"), ("a", "3")],
           f"user properties: {getattr(got, 'UserProperty', None)}")
    expect(getattr(got, "ResponseTopic", None) == f"{base}/reply", f"response topic: {getattr(got, 'ResponseTopic', None)}")
    expect(getattr(got, "CorrelationData", None) == b"\x00\x01corr\xff",
           f"correlation data: {getattr(got, 'CorrelationData', None)!r}")
    expect(getattr(got, "ContentType", None) == "application/json", f"content type: {getattr(got, 'ContentType', None)}")
    expect(getattr(got, "PayloadFormatIndicator", None) == 1,
           f"payload format indicator: {getattr(got, 'PayloadFormatIndicator', None)}")
    exp = getattr(got, "MessageExpiryInterval", None)
    expect(exp is not None and 55 <= exp <= 60, f"message expiry interval: {exp}")
    expect(getattr(got, "SubscriptionIdentifier", None) == [42],
           f"subscription identifier: {getattr(got, 'SubscriptionIdentifier', None)}")

    # Topic alias: set it with the first PUBLISH, use it alone in the second.
    a1 = Properties(PacketTypes.PUBLISH)
    a1.TopicAlias = 1
    pub.publish(f"{base}/data/aliased", "with topic", qos=1, properties=a1)
    a2 = Properties(PacketTypes.PUBLISH)
    a2.TopicAlias = 1
    pub.publish("", "alias only", qos=1, properties=a2)
    expect_msg(sub.next(), f"{base}/data/aliased", "with topic", 1)
    expect_msg(sub.next(), f"{base}/data/aliased", "alias only", 1)

    # Request/response: the responder answers on the response topic with the correlation data.
    responder = Peer("5", transport)
    responder.connect()
    responder.subscribe(f"{base}/req", 1)
    requester = Peer("5", transport)
    requester.connect()
    requester.subscribe(f"{base}/resp/{requester.client_id}", 1)
    rq = Properties(PacketTypes.PUBLISH)
    rq.ResponseTopic = f"{base}/resp/{requester.client_id}"
    rq.CorrelationData = b"req-7"
    requester.publish(f"{base}/req", "ping", qos=1, properties=rq)
    req = responder.next(what="the request")
    rp = Properties(PacketTypes.PUBLISH)
    rp.CorrelationData = req.properties.CorrelationData
    responder.publish(req.properties.ResponseTopic, "pong", qos=1, properties=rp)
    resp = requester.next(what="the response")
    expect_msg(resp, f"{base}/resp/{requester.client_id}", "pong", 1)
    expect(resp.properties.CorrelationData == b"req-7", f"response correlation data: {resp.properties.CorrelationData!r}")
    for peer in (responder, requester, pub, sub):
        peer.disconnect()


def shared(version, transport):
    expect(version == "5", "shared needs MQTT 5")
    base = unique(f"shared/{transport}")
    members = [Peer("5", transport) for _ in range(2)]
    for m in members:
        m.connect()
        m.subscribe(f"$share/workers/{base}/#", 1)
    plain = Peer("5", transport)
    plain.connect()
    plain.subscribe(f"{base}/#", 1)
    pub = Peer("5", transport)
    pub.connect()
    n = 20

    def collect(peer, count):
        return [bytes(peer.next(what=f"message {k + 1} of {count}").payload).decode() for k in range(count)]

    def round_of_jobs(label):
        jobs = [f"{label} job {i}" for i in range(n)]
        for j in jobs:
            pub.publish(f"{base}/job", j, qos=1)
        expect(collect(plain, n) == jobs, f"{label}: the plain subscriber did not get every message in order")
        got, counts = [], [0, 0]
        deadline = time.monotonic() + TIMEOUT
        while len(got) < n and time.monotonic() < deadline:
            for k, m in enumerate(members):
                try:
                    msg = m.messages.get(timeout=0.05)
                except queue.Empty:
                    continue
                got.append(bytes(msg.payload).decode())
                counts[k] += 1
        time.sleep(0.2)
        extra = sum(m.messages.qsize() for m in members)
        print(f"  {label}: share group 'workers' split {counts[0]} + {counts[1]}", flush=True)
        expect(len(got) == n, f"{label}: the share group got {len(got)} of {n} messages")
        expect(sorted(got) == sorted(jobs), f"{label}: the share group got duplicates or strays: {sorted(got)}")
        expect(extra == 0, f"{label}: {extra} message(s) delivered to more than one member")
        expect(all(c > 0 for c in counts),
               f"{label}: the share group 'workers' (2 members) was not load-balanced: split {counts[0]} + {counts[1]}")
        return jobs

    round_of_jobs("one group")
    # A second share group on the same topic must get every message too, and must not disturb
    # how the first group spreads its messages.
    solo = Peer("5", transport)
    solo.connect()
    solo.subscribe(f"$share/solo/{base}/#", 1)
    jobs = round_of_jobs("two groups")
    expect(collect(solo, n) == jobs, "a one-member share group did not get every message in order")
    for p in members + [solo, plain, pub]:
        p.disconnect()


def session_subscribe(version, transport, client_id, topic_filter):
    a = persistent_peer(version, transport, client_id)
    a.connect()
    a.subscribe(topic_filter, 1)
    a.disconnect()


def session_receive(version, transport, client_id, count):
    b = persistent_peer(version, transport, client_id)
    present = b.connect()
    print(f"  SESSION_PRESENT {int(present)}")
    for i in range(int(count)):
        m = b.next(what=f"queued message {i + 1} of {count}")
        print(f"GOT {m.topic} {m.qos} {bytes(m.payload).decode(errors='replace')}")
    time.sleep(0.3)
    extra = b.messages.qsize()
    b.disconnect()
    expect(present, "session_present was 0 after the restart")
    expect(extra == 0, f"{extra} more message(s) than the {count} expected")


SCENARIOS = {
    "pubsub": pubsub,
    "retained": retained,
    "persistent": persistent,
    "properties": properties,
    "shared": shared,
    "session-subscribe": session_subscribe,
    "session-receive": session_receive,
}


def parse_check(check):
    parts = check.split(":")
    expect(len(parts) >= 3, f"bad check {check!r}: want SCENARIO:VERSION:TRANSPORT")
    scenario, version, transport, *args = parts
    expect(version in ("311", "5"), f"bad version in {check!r}")
    expect(transport in ("tcp", "tls", "ws", "wss"), f"bad transport in {check!r}")
    return scenario, version, transport, args


def shutdown_wait(checks):
    """Connect every client, say READY, then report each DISCONNECT the server sends."""
    peers = []
    for check in checks:
        _, version, transport, _ = parse_check(check)
        p = Peer(version, transport)
        p.connect()
        peers.append((check, p))
    print("READY", flush=True)
    failed = False
    deadline = time.monotonic() + 30
    for check, p in peers:
        try:
            rc = p.disconnects.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            print(f"FAIL {check}: the server never disconnected this client", flush=True)
            failed = True
            continue
        print(f"DISCONNECT {check} reason={rc.value:#04x} ({rc})", flush=True)
        if rc.value == SERVER_SHUTTING_DOWN or p.version == "311":
            # MQTT 3.1.1 has no server DISCONNECT: a closed connection is all it can get.
            print(f"PASS {check}", flush=True)
        else:
            print(f"FAIL {check}: DISCONNECT reason {rc.value:#04x} ({rc}), expected 0x8b", flush=True)
            failed = True
    Peer.stop_all()
    return 1 if failed else 0


def main():
    global CA, CERT, KEY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", help="device certificate (PEM) TLS clients present")
    ap.add_argument("--key", help="its private key (PEM)")
    for k in ("mqtt", "mqtts", "ws", "wss"):
        ap.add_argument(f"--{k}")
    ap.add_argument("checks", nargs="+")
    a = ap.parse_args()
    CA = a.ca
    CERT, KEY = a.cert, a.key
    for k in ("mqtt", "mqtts", "ws", "wss"):
        if getattr(a, k):
            ADDRS[k] = split_addr(getattr(a, k))
    print(f"paho-mqtt {paho.mqtt.__version__}, python {sys.version.split()[0]}", flush=True)

    if all(c.startswith("shutdown-wait:") for c in a.checks):
        try:
            return shutdown_wait(a.checks)
        except CheckFailed as e:
            print(f"FAIL shutdown-wait: {e}", flush=True)
            Peer.stop_all()
            return 1

    failed = 0
    for check in a.checks:
        started = time.monotonic()
        try:
            scenario, version, transport, args = parse_check(check)
            expect(scenario in SCENARIOS, f"unknown scenario {scenario!r}")
            SCENARIOS[scenario](version, transport, *args)
            print(f"PASS {check} ({time.monotonic() - started:.2f}s)", flush=True)
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {check}: {e}", flush=True)
        except Exception as e:  # a paho or socket error: show where
            failed += 1
            print(f"FAIL {check}: {type(e).__name__}: {e}", flush=True)
            for line in traceback.format_exc().splitlines():
                print(f"  {line}", flush=True)
        finally:
            Peer.stop_all()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
