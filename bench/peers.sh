#!/usr/bin/env bash
# Ferrule, Mosquitto and rumqttd side by side (issue 8): each broker pinned to one core
# (taskset -c BROKER_CPU), the load generator on the other (taskset -c BENCH_CPU); the median of
# REPEAT runs per cell; the broker's CPU time (user + system, all threads, /proc/PID/stat) per
# delivered message, per connection and per mTLS handshake, beside the rates. Prints markdown on
# stdout (the table, the crypto floor, the machine); progress goes to stderr.
#
# Rows: 1 qos0 (fan-in 4x4, QoS 0), 2 qos1 (fan-in 4x4, QoS 1), 3 fanout (1 -> 100, QoS 0),
# 4 latency (8k msg/s in, 32k out: p99, QoS 0 and QoS 1), 5 idle (memory per idle connection,
# plain and mTLS, a fresh broker process per measurement), 6 storm (plain connections),
# 7 handshake (full mTLS handshakes, ECDSA P-256 and RSA-2048 device certificates), 8 qos2
# (4x4, QoS 2, 20 in flight per publisher), 9 retained (4 publishers store retained messages,
# each on its own topic, then 4 subscribers receive them all), 10 persistent (4 subscribers in
# persistent sessions away while 4 publishers publish at QoS 1, then back to drain their queues).
#
# Every broker gets the same ECDSA P-256 server certificate (bench/peers/server_cert.py) and the
# same device certificates (bench/identity.py pki; registered ACTIVE in Ferrule beforehand, so the
# handshake rows measure handshakes, not registration). Brokers listen on free loopback ports
# only; everything started is stopped on exit and the temporary directory removed. A whole run
# takes about 11 minutes at SCALE=1 (plus the build, and 40 s of certificates unless PKI reuses them).
#
# Environment:
#   REPEAT=3            runs per cell; the median is reported
#   SCALE=1.0           multiplies every message, connection and certificate count (0.1: smoke)
#   ONLY=LIST           rows to run, by number or name, comma-separated (e.g. ONLY=1,storm)
#   BROKERS=LIST        brokers to measure (ferrule,mosquitto,rumqttd)
#   RAW=FILE            also append every run's JSON line (with broker and row) to FILE
#   FERRULE, BENCH      prebuilt binaries; default: cargo build --release -p ferrule -p ferrule-bench
#   RUMQTTD             rumqttd binary; default: on PATH, or ~/.cache/rumqttd/bin/rumqttd, or
#                       installed there with cargo (RUMQTTD_INSTALL=0 to skip; about 4 min)
#   RUMQTTD_DELAY_MS=0  rumqttd's next_connection_delay_ms (its sample config has 1, which caps
#                       its accept loop below 1,000 connections/s)
#   BROKER_CPU=0, BENCH_CPU=1   the cores
#   PKI=DIR             keep device certificates in DIR and reuse them on the next run
#   CARGO_TARGET_DIR    where cargo builds (default: ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPEAT=${REPEAT:-3}
SCALE=${SCALE:-1.0}
ONLY=${ONLY:-}
BROKERS=${BROKERS:-ferrule,mosquitto,rumqttd}
RAW=${RAW:-}
RUMQTTD_DELAY_MS=${RUMQTTD_DELAY_MS:-0}
BROKER_CPU=${BROKER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
TIMEOUT=120
IDENTITY=$ROOT/bench/identity.py

log() { printf '%s\n' "$*" >&2; }
die() { log "peers.sh: $*"; exit 1; }

for tool in jq python3 taskset openssl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
python3 -c 'import boto3, cryptography' 2>/dev/null ||
    die "python3 with boto3 and cryptography is needed (pip install boto3 cryptography)"

# want NUMBER NAME...: whether ONLY selects this row.
want() {
    [[ -z $ONLY ]] && return 0
    local t n
    for t in ${ONLY//,/ }; do
        for n in "$@"; do [[ $t == "$n" ]] && return 0; done
    done
    return 1
}
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s); print (v < 1 ? 1 : v) }'; }

# --- Binaries ------------------------------------------------------------------------------
BUILT_FROM="prebuilt ${FERRULE:-}"
if [[ -z ${FERRULE:-} || -z ${BENCH:-} ]]; then
    BUILT_FROM="built from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "$ROOT")"
    log "building ferrule and ferrule-bench (release)..."
    (cd "$ROOT" && cargo build --release -p ferrule -p ferrule-bench >&2)
fi
FERRULE=${FERRULE:-$TARGET/release/ferrule}
BENCH=${BENCH:-$TARGET/release/ferrule-bench}
[[ -x $FERRULE && -x $BENCH ]] || die "no ferrule or ferrule-bench binary at $FERRULE, $BENCH"

SKIPPED=()
has_broker() { [[ ,$BROKERS, == *,$1,* ]]; }
if has_broker mosquitto && ! command -v mosquitto >/dev/null; then
    SKIPPED+=("Mosquitto: not installed (apt-get install mosquitto)")
    BROKERS=${BROKERS//mosquitto/}
fi
if has_broker rumqttd; then
    RUMQTTD=${RUMQTTD:-$(command -v rumqttd || true)}
    [[ -z $RUMQTTD && -x $HOME/.cache/rumqttd/bin/rumqttd ]] && RUMQTTD=$HOME/.cache/rumqttd/bin/rumqttd
    if [[ -z $RUMQTTD && ${RUMQTTD_INSTALL:-1} == 1 ]]; then
        log "installing rumqttd 0.20 into ~/.cache/rumqttd (about 4 minutes on 2 cores)..."
        # Not --locked: its lock file no longer builds on current rustc.
        if CARGO_TARGET_DIR=${RUMQTTD_TARGET:-$HOME/.cache/tgt-rumqttd} cargo install rumqttd \
            --version '^0.20' --features verify-client-cert --root "$HOME/.cache/rumqttd" >&2; then
            RUMQTTD=$HOME/.cache/rumqttd/bin/rumqttd
        fi
    fi
    if [[ -z $RUMQTTD || ! -x $RUMQTTD ]]; then
        SKIPPED+=("rumqttd: not found and not installed (cargo install rumqttd --features verify-client-cert)")
        BROKERS=${BROKERS//rumqttd/}
    fi
fi
ALL=()
for b in ferrule mosquitto rumqttd; do has_broker "$b" && ALL+=("$b"); done
((${#ALL[@]} > 0)) || die "no broker to measure"

# Idle connections need a descriptor each, in the bench and in the broker (which inherits this).
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
(($(ulimit -n) > 4200)) || log "ulimit -n is $(ulimit -n): the idle rows need about 4,200"

WORK=$(mktemp -d)
# Mosquitto drops to the mosquitto user when started as root: it must read its files.
chmod 755 "$WORK"
declare -A PID PLAIN TLS_EC TLS_RSA
cleanup() {
    local b
    for b in "${!PID[@]}"; do
        if [[ -n ${PID[$b]} ]]; then kill "${PID[$b]}" 2>/dev/null && wait "${PID[$b]}" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- Certificates --------------------------------------------------------------------------
SRV=$WORK/server
python3 "$ROOT/bench/peers/server_cert.py" "$SRV"
chmod 755 "$SRV" && chmod 644 "$SRV"/*
NEED_PKI=
if want 5 idle || want 7 handshake mtls; then NEED_PKI=1; fi
EC_CERTS=$(scaled 2000)  # the idle mTLS row uses each once, as does a handshake run
RSA_CERTS=$(scaled 1000)
PKI=${PKI:-$WORK/pki}
if [[ -z $NEED_PKI ]]; then
    # No device certificates: the TLS listeners still want a CA file; any certificate will do.
    PKI=$WORK/no-pki
    mkdir -p "$PKI" && cp "$SRV/ca.pem" "$PKI/ca-ec.pem" && cp "$SRV/ca.pem" "$PKI/ca-rsa.pem"
elif [[ ! -f $PKI/ca-ec.pem || $(find "$PKI/ec" -name '*.crt' | wc -l) -lt $EC_CERTS ||
    $(find "$PKI/rsa" -name '*.crt' | wc -l) -lt $RSA_CERTS ]]; then
    rm -rf "$PKI"
    log "making device certificates: $EC_CERTS ECDSA P-256, $RSA_CERTS RSA-2048 (about 2 min at SCALE=1)..."
    python3 "$IDENTITY" pki "$PKI" --ec "$EC_CERTS" --rsa "$RSA_CERTS" --ec-set warm=50
fi
chmod -R a+rX "$PKI"
cat "$PKI/ca-ec.pem" "$PKI/ca-rsa.pem" >"$WORK/device-cas.pem"
chmod 644 "$WORK/device-cas.pem"

# --- Brokers -------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
answers() { taskset -c "$BENCH_CPU" "$BENCH" connect --port "$1" --connections 1 --timeout 5 --json 2>/dev/null | jq -e '.succeeded == 1' >/dev/null; }
wait_up() {
    local b=$1
    for _ in $(seq 100); do
        answers "${PLAIN[$b]}" && return 0
        kill -0 "${PID[$b]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$WORK/$b.log" >&2
    die "$b did not come up"
}

FDATA=$WORK/ferrule-data
PROVISIONED=
start_ferrule() {
    local listener
    mkdir -p "$FDATA"
    rm -f "$FDATA/listeners.toml"
    # A queue per session as deep as Mosquitto's here (max_queued_messages 0, no limit): the
    # persistent-session row queues up to 4 x its message count for each subscriber away.
    taskset -c "$BROKER_CPU" "$FERRULE" serve --data-dir "$FDATA" --mqtt-listen 127.0.0.1:0 \
        --mqtts-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --tls-cert "$SRV/server.pem" \
        --tls-key "$SRV/server.key" --max-queued-messages 1000000 --log warn \
        >>"$WORK/ferrule.log" 2>&1 &
    PID[ferrule]=$!
    listener() { sed -n "s/^$1 = \"127\\.0\\.0\\.1:\\([0-9]*\\)\"\$/\\1/p" "$FDATA/listeners.toml" 2>/dev/null; }
    for _ in $(seq 300); do
        [[ -n $(listener api) ]] && break
        kill -0 "${PID[ferrule]}" 2>/dev/null || { tail -20 "$WORK/ferrule.log" >&2; die "ferrule serve exited"; }
        sleep 0.1
    done
    PLAIN[ferrule]=$(listener mqtt)
    TLS_EC[ferrule]=$(listener mqtts)
    TLS_RSA[ferrule]=${TLS_EC[ferrule]}
    [[ -n ${PLAIN[ferrule]} && -n ${TLS_EC[ferrule]} ]] || die "ferrule wrote no mqtt/mqtts listener"
    if [[ -n $NEED_PKI && -z $PROVISIONED ]]; then
        log "registering the device CAs and $((EC_CERTS + RSA_CERTS + 50)) certificates ACTIVE in Ferrule..."
        (
            unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
            export AWS_SHARED_CREDENTIALS_FILE=$FDATA/credentials AWS_DEFAULT_REGION=us-east-1
            python3 "$IDENTITY" provision "$PKI" --endpoint "http://127.0.0.1:$(listener api)" \
                --set warm >/dev/null
        )
        PROVISIONED=1
    fi
}

start_mosquitto() {
    local dir=$WORK/mosquitto
    mkdir -p "$dir" && chmod 755 "$dir"
    PLAIN[mosquitto]=$(free_port)
    TLS_EC[mosquitto]=$(free_port)
    TLS_RSA[mosquitto]=${TLS_EC[mosquitto]}
    # max_queued_messages 0: no limit (its default of 1,000 drops QoS 1 messages in these runs);
    # set_tcp_nodelay: else its CONNACK waits ~40 ms behind the TLS 1.3 session tickets (Nagle);
    # warnings and errors only in its log, as Ferrule (--log warn) and rumqttd (no -v).
    cat >"$dir/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
max_queued_messages 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
connection_messages false
listener ${PLAIN[mosquitto]} 127.0.0.1
listener ${TLS_EC[mosquitto]} 127.0.0.1
cafile $WORK/device-cas.pem
certfile $SRV/server.pem
keyfile $SRV/server.key
require_certificate true
use_identity_as_username true
EOF
    chmod 644 "$dir/mosquitto.conf"
    taskset -c "$BROKER_CPU" mosquitto -c "$dir/mosquitto.conf" >>"$WORK/mosquitto.log" 2>&1 &
    PID[mosquitto]=$!
}

start_rumqttd() {
    local dir=$WORK/rumqttd
    mkdir -p "$dir"
    PLAIN[rumqttd]=$(free_port)
    TLS_EC[rumqttd]=$(free_port)
    TLS_RSA[rumqttd]=$(free_port)
    # Its verifier trusts only the first certificate of `capath`: one TLS listener per device CA.
    # Router limits as its sample config (rumqttd.toml in the crate), which drop nothing here.
    {
        echo "id = 0"
        echo "[router]"
        echo "id = 0"
        echo "max_connections = 10010"
        echo "max_outgoing_packet_count = 200"
        echo "max_segment_size = 104857600"
        echo "max_segment_count = 10"
        local n=1 port tls
        for spec in "${PLAIN[rumqttd]}|" "${TLS_EC[rumqttd]}|$PKI/ca-ec.pem" "${TLS_RSA[rumqttd]}|$PKI/ca-rsa.pem"; do
            port=${spec%%|*} tls=${spec#*|}
            echo "[v4.$n]"
            echo "name = \"v4-$n\""
            echo "listen = \"127.0.0.1:$port\""
            echo "next_connection_delay_ms = $RUMQTTD_DELAY_MS"
            if [[ -n $tls ]]; then
                echo "[v4.$n.tls]"
                echo "capath = \"$tls\""
                echo "certpath = \"$SRV/server.pem\""
                echo "keypath = \"$SRV/server.key\""
            fi
            echo "[v4.$n.connections]"
            echo "connection_timeout_ms = 60000"
            echo "max_payload_size = 20480"
            echo "max_inflight_count = 100"
            echo "dynamic_filters = true"
            n=$((n + 1))
        done
    } >"$dir/rumqttd.toml"
    taskset -c "$BROKER_CPU" "$RUMQTTD" -q -c "$dir/rumqttd.toml" >>"$WORK/rumqttd.log" 2>&1 &
    PID[rumqttd]=$!
}

start_broker() {
    "start_$1"
    wait_up "$1"
    log "$1: pid ${PID[$1]}, plain ${PLAIN[$1]}, mTLS ${TLS_EC[$1]}/${TLS_RSA[$1]}"
}
stop_broker() {
    if [[ -n ${PID[$1]:-} ]]; then
        kill "${PID[$1]}" 2>/dev/null && wait "${PID[$1]}" 2>/dev/null || true
        PID[$1]=
    fi
}

# --- Runs ----------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
# user + system clock ticks of the whole process (all threads), fields 14 and 15.
cpu_ticks() { [[ -r /proc/$1/stat ]] || { echo 0; return; }; sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# quiesce BROKER: waits (up to 60 s) until the broker uses under 2 % of a core over half a
# second, so that work left from the previous run (a write-behind backlog, say) is not charged
# to the next one; says so when it had to wait.
quiesce() {
    local pid=$1 waited=0 a b
    while ((waited < 120)); do
        a=$(cpu_ticks "$pid")
        sleep 0.5
        b=$(cpu_ticks "$pid")
        (((b - a) * 100 < CLK_TCK)) && break  # under 10 ms of CPU in 0.5 s
        waited=$((waited + 1))
    done
    ((waited == 0)) || log "  waited $((waited / 2)).$((waited % 2 * 5)) s for pid $pid to go idle before the run"
}

# bench BROKER ROW SCENARIO ARGS...: one ferrule-bench run on BENCH_CPU; prints its JSON with
# broker_cpu_s (the broker's CPU time over the run) and the broker and row added.
bench() {
    local b=$1 row=$2 before after json errors
    shift 2
    quiesce "${PID[$b]}"
    before=$(cpu_ticks "${PID[$b]}")
    if ! json=$(taskset -c "$BENCH_CPU" "$BENCH" "$@" --timeout "$TIMEOUT" --json 2>"$WORK/bench.err"); then
        log "  ferrule-bench $1 against $b failed: $(tail -1 "$WORK/bench.err")"
        json='{"scenario":"failed"}'
    fi
    after=$(cpu_ticks "${PID[$b]}")
    # A broker that died mid-run: the run does not count (ensure_up restarts it).
    kill -0 "${PID[$b]}" 2>/dev/null || json='{"scenario":"failed","broker_exited":true}'
    json=$(jq -c --arg b "$b" --arg row "$row" --argjson cpu "$(((after - before)))" --argjson hz "$CLK_TCK" \
        '. + {broker: $b, row: $row, broker_cpu_s: ($cpu / $hz)}' <<<"$json")
    [[ -n $RAW ]] && printf '%s\n' "$json" >>"$RAW"
    errors=$(jq -r '.errors // [] | .[]' <<<"$json")
    [[ -z $errors ]] || log "  $b: $errors"
    printf '%s\n' "$json"
}

# ensure_up BROKER: after a run, restarts the broker if it exited, saying how it ended.
ensure_up() {
    local status=0
    kill -0 "${PID[$1]}" 2>/dev/null && return 0
    wait "${PID[$1]}" 2>/dev/null || status=$?
    # Ferrule exits 0 on SIGTERM: 0 here means something outside stopped it.
    log "  $1 (pid ${PID[$1]}) exited during the run (exit status $status); its last log lines:"
    tail -5 "$WORK/$1.log" >&2
    EXITED+=("$1 (pid ${PID[$1]}, status $status)")
    start_broker "$1"
}
EXITED=()

# VALS[measure|broker]: one value per run; NOTE[measure|broker]: losses and failures seen.
declare -A VALS NOTE GEN BUSY
record() { VALS[$1|$2]+="$3 "; }
# note MEASURE BROKER JSON: remembers lost messages, failed connections and the generator's CPU.
note() {
    local n
    n=$(jq -r '[(.lost // 0), (.failed // 0), (if .timed_out then 1 else 0 end),
        (if .scenario == "failed" then 1 else 0 end)] | add' <<<"$3")
    [[ $n == 0 ]] || NOTE[$1|$2]=1
    GEN[$1|$2]+="$(jq -r '.client_cpu_pct // "-"' <<<"$3") "
    BUSY[$1|$2]+="$(get '.broker_cpu_s * 100 / .elapsed_s' "$3") "
}
median() {
    mid "${VALS[$1|$2]:-}"
}
# mid "V V V": the median of the numbers among the words, or "-".
mid() {
    tr ' ' '\n' <<<"$1" | awk '/^[-+0-9.e]+$/ && $0 != "-"' | sort -g |
        awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'
}
# jq expression over a run's JSON, "-" when null.
get() { jq -r "($1) // \"-\"" <<<"$2" 2>/dev/null || echo -; }

# Per-broker counts, so that each run lasts a few seconds on its broker.
declare -A COUNT=(
    [qos0|ferrule]=400000 [qos0|mosquitto]=60000 [qos0|rumqttd]=300000
    [qos1|ferrule]=200000 [qos1|mosquitto]=50000 [qos1|rumqttd]=200000
    [fanout|ferrule]=60000 [fanout|mosquitto]=8000 [fanout|rumqttd]=60000
    [storm|ferrule]=40000 [storm|mosquitto]=50000 [storm|rumqttd]=4000
    [hs|ferrule]=2000 [hs|mosquitto]=2000 [hs|rumqttd]=1000
    [qos2|ferrule]=50000 [qos2|mosquitto]=5000 [qos2|rumqttd]=50000
    [retained|ferrule]=25000 [retained|mosquitto]=10000 [retained|rumqttd]=10000
    [persistent|ferrule]=50000 [persistent|mosquitto]=20000 [persistent|rumqttd]=20000
)
count() { scaled "${COUNT[$1|$2]}"; }
PUBSUB=(pubsub --payload 64)

pubsub_row() { # measure-prefix, broker, json
    record "$1.cpu" "$2" "$(get '.broker_cpu_s * 1e6 / .received' "$3")"
    record "$1.rate" "$2" "$(get '.throughput_msgs' "$3")"
    note "$1.cpu" "$2" "$3"
    note "$1.rate" "$2" "$3"
}

run_traffic_rows() {
    local rep b j
    for rep in $(seq "$REPEAT"); do
        for b in "${ALL[@]}"; do
            if want 1 qos0; then
                log "row 1, QoS 0 fan-in 4x4, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" qos0 "${PUBSUB[@]}" --port "${PLAIN[$b]}" --qos 0 --publishers 4 \
                    --subscribers 4 --messages "$(count qos0 "$b")")
                pubsub_row qos0 "$b" "$j"
            fi
            if want 2 qos1; then
                log "row 2, QoS 1 fan-in 4x4, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" qos1 "${PUBSUB[@]}" --port "${PLAIN[$b]}" --qos 1 --publishers 4 \
                    --subscribers 4 --messages "$(count qos1 "$b")")
                pubsub_row qos1 "$b" "$j"
            fi
            if want 3 fanout; then
                log "row 3, fan-out 1 -> 100 QoS 0, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" fanout "${PUBSUB[@]}" --port "${PLAIN[$b]}" --qos 0 --publishers 1 \
                    --subscribers 100 --messages "$(count fanout "$b")")
                pubsub_row fanout "$b" "$j"
            fi
            if want 8 qos2; then
                # 20 in flight: Mosquitto drops a 3.1.1 client's QoS 2 PUBLISHes beyond it.
                log "row 8, QoS 2 4x4, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" qos2 "${PUBSUB[@]}" --port "${PLAIN[$b]}" --qos 2 --inflight 20 \
                    --publishers 4 --subscribers 4 --messages "$(count qos2 "$b")")
                pubsub_row qos2 "$b" "$j"
            fi
            if want 9 retained; then
                log "row 9, retained messages, 4 publishers -> 4 subscribers, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" retained "${PUBSUB[@]}" --port "${PLAIN[$b]}" --retained --qos 1 \
                    --publishers 4 --subscribers 4 --messages "$(count retained "$b")")
                pubsub_row retained "$b" "$j"
            fi
            if want 10 persistent; then
                log "row 10, persistent sessions, QoS 1 4x4, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" persistent "${PUBSUB[@]}" --port "${PLAIN[$b]}" --persistent --qos 1 \
                    --publishers 4 --subscribers 4 --messages "$(count persistent "$b")")
                pubsub_row persistent "$b" "$j"
            fi
            if want 4 latency; then
                local q
                for q in 0 1; do
                    log "row 4, 4 x 2,000 msg/s -> 4 subscribers, QoS $q, $b, run $rep"
                    ensure_up "$b"
                    j=$(bench "$b" latency "${PUBSUB[@]}" --port "${PLAIN[$b]}" --qos "$q" --publishers 4 \
                        --subscribers 4 --rate 2000 --messages "$(scaled 10000)")
                    record "lat$q" "$b" "$(get '.latency_p99_us / 1000' "$j")"
                    note "lat$q" "$b" "$j"
                done
            fi
            if want 6 storm; then
                log "row 6, plain connection storm, $b, run $rep"
                ensure_up "$b"
                j=$(bench "$b" storm connect --port "${PLAIN[$b]}" --concurrency 10 \
                    --connections "$(count storm "$b")")
                record storm.rate "$b" "$(get '.connect_rate' "$j")"
                record storm.cpu "$b" "$(get '.broker_cpu_s * 1e6 / .succeeded' "$j")"
                note storm.rate "$b" "$j"
                note storm.cpu "$b" "$j"
            fi
            if want 7 handshake mtls; then
                local kind port
                for kind in ec rsa; do
                    [[ $kind == ec ]] && port=${TLS_EC[$b]} || port=${TLS_RSA[$b]}
                    log "row 7, mTLS handshakes, $kind device certificates, $b, run $rep"
                    ensure_up "$b"
                    j=$(bench "$b" "hs-$kind" connect --port "$port" --cafile "$SRV/ca.pem" \
                        --certs "$PKI/$kind" --concurrency 10 --connections "$(count hs "$b")")
                    record "hs-$kind.cpu" "$b" "$(get '.broker_cpu_s * 1e3 / .succeeded' "$j")"
                    record "hs-$kind.rate" "$b" "$(get '.connect_rate' "$j")"
                    note "hs-$kind.cpu" "$b" "$j"
                    note "hs-$kind.rate" "$b" "$j"
                done
            fi
        done
    done
}

# Row 5: a freshly started broker per measurement, 50 warm-up connections, then the idle run.
# Keep alive 1,200 s (AWS IoT's maximum): rumqttd refuses 0, and nothing is sent while idle.
run_idle_rows() {
    local rep b kind j tls
    for rep in $(seq "$REPEAT"); do
        for b in "${ALL[@]}"; do
            for kind in plain mtls; do
                log "row 5, idle memory, $kind, $b, run $rep (fresh broker)"
                start_broker "$b"
                if [[ $kind == plain ]]; then
                    taskset -c "$BENCH_CPU" "$BENCH" connect --port "${PLAIN[$b]}" --connections 50 --timeout 30 >/dev/null 2>&1 || true
                    tls=(--port "${PLAIN[$b]}")
                else
                    taskset -c "$BENCH_CPU" "$BENCH" connect --port "${TLS_EC[$b]}" --cafile "$SRV/ca.pem" \
                        --certs "$PKI/warm" --connections 50 --timeout 30 >/dev/null 2>&1 || true
                    tls=(--port "${TLS_EC[$b]}" --cafile "$SRV/ca.pem" --certs "$PKI/ec")
                fi
                sleep 1
                j=$(bench "$b" "idle-$kind" idle "${tls[@]}" --connections "$(scaled 2000)" \
                    --keep-alive 1200 --broker-pid "${PID[$b]}" --settle 2)
                record "idle-$kind" "$b" "$(get '.kib_per_conn' "$j")"
                note "idle-$kind" "$b" "$j"
                stop_broker "$b"
            done
        done
    done
}

# The crypto floor, on the broker's core before any broker runs.
declare -A FLOOR
crypto_floor() {
    log "openssl speed -seconds 2 ecdsap256 rsa2048 ecdhx25519 (core $BROKER_CPU, about 16 s)..."
    local out
    out=$(taskset -c "$BROKER_CPU" openssl speed -seconds 2 ecdsap256 rsa2048 ecdhx25519 2>/dev/null)
    # per-op milliseconds from the ops/s columns (the seconds columns are rounded)
    FLOOR[rsa_sign]=$(awk '/^rsa 2048 bits/ { printf "%.4f", 1000 / $(NF - 1) }' <<<"$out")
    FLOOR[rsa_verify]=$(awk '/^rsa 2048 bits/ { printf "%.4f", 1000 / $NF }' <<<"$out")
    FLOOR[p256_sign]=$(awk '/ecdsa \(nistp256\)/ { printf "%.4f", 1000 / $(NF - 1) }' <<<"$out")
    FLOOR[p256_verify]=$(awk '/ecdsa \(nistp256\)/ { printf "%.4f", 1000 / $NF }' <<<"$out")
    FLOOR[x25519]=$(awk '/ecdh \(X25519\)/ { printf "%.4f", 1000 / $NF }' <<<"$out")
    FLOOR[ec]=$(awk -v a="${FLOOR[p256_sign]}" -v b="${FLOOR[p256_verify]}" -v c="${FLOOR[x25519]}" 'BEGIN { printf "%.3f", a + b + c }')
    FLOOR[rsa]=$(awk -v a="${FLOOR[p256_sign]}" -v b="${FLOOR[rsa_verify]}" -v c="${FLOOR[x25519]}" 'BEGIN { printf "%.3f", a + b + c }')
    # What a TLS 1.3 server does per full handshake with a client certificate: verify the CA's
    # signature on the device certificate and the device's CertificateVerify (two verifies: the
    # device CAs here use the device's key type), and both halves of X25519 (key generation and
    # derivation, each about one scalar multiplication).
    FLOOR[ec2]=$(awk -v a="${FLOOR[p256_sign]}" -v b="${FLOOR[p256_verify]}" -v c="${FLOOR[x25519]}" 'BEGIN { printf "%.3f", a + 2 * b + 2 * c }')
    FLOOR[rsa2]=$(awk -v a="${FLOOR[p256_sign]}" -v b="${FLOOR[rsa_verify]}" -v c="${FLOOR[x25519]}" 'BEGIN { printf "%.3f", a + 2 * b + 2 * c }')
}

# Load average, and the share of time some runnable task waited for a CPU over the last minute
# (other work on the machine competes with the pinned broker and generator).
load() { echo "$(cut -d' ' -f1-3 /proc/loadavg) (CPU pressure $(sed -n 's/^some avg10=[^ ]* avg60=\([^ ]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo -) %)"; }
LOAD_BEFORE=$(load)
want 7 handshake mtls && crypto_floor

if has_broker ferrule && [[ -n $NEED_PKI ]]; then
    start_broker ferrule
    stop_broker ferrule
fi
want 5 idle && run_idle_rows
if want 1 qos0 || want 2 qos1 || want 3 fanout || want 4 latency || want 6 storm || want 7 handshake mtls || want 8 qos2 || want 9 retained || want 10 persistent; then
    for b in "${ALL[@]}"; do start_broker "$b"; done
    run_traffic_rows
    for b in "${ALL[@]}"; do stop_broker "$b"; done
fi
LOAD_AFTER=$(load)

# --- Report --------------------------------------------------------------------------------
fmt() { # number, decimals
    [[ $1 == - ]] && { echo -; return; }
    awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
cell() { # measure broker decimals
    local v
    has_broker "$2" || { echo "n/a"; return; }
    v=$(fmt "$(median "$1" "$2")" "$3")
    [[ -n ${NOTE[$1|$2]:-} ]] && v="$v ‡"
    echo "$v"
}
# met OP TARGET VALUE
met() {
    [[ $3 == - || $2 == - ]] && { echo -; return; }
    awk -v op="$1" -v t="$2" -v v="$3" 'BEGIN { ok = (op == "<=") ? (v <= t) : (v >= t); print (ok ? "yes" : "no") }'
}
# row LABEL MEASURE DECIMALS TARGET-TEXT OP TARGET-VALUE (TARGET-VALUE "mosquitto": Mosquitto's)
ROWS=()
row() {
    local f m r t
    f=$(median "$2" ferrule) m=$(median "$2" mosquitto) r=$(median "$2" rumqttd)
    t=$6
    [[ $t == mosquitto ]] && t=$m
    ROWS+=("| $1 | $(cell "$2" ferrule "$3") | $(cell "$2" mosquitto "$3") | $(cell "$2" rumqttd "$3") | $(ratio "$f" "$m") | $(ratio "$f" "$r") | $4 | $(met "$5" "$t" "$f") |")
}
want 1 qos0 && row "1. QoS 0 fan-in 4x4, 64 B: broker CPU µs per delivered message" qos0.cpu 2 "≤ 1.2" "<=" 1.2
want 1 qos0 && row "1. QoS 0 fan-in 4x4: delivered msg/s" qos0.rate 0 "" "" -
want 2 qos1 && row "2. QoS 1 fan-in 4x4: broker CPU µs per delivered message" qos1.cpu 2 "≤ 1.6" "<=" 1.6
want 2 qos1 && row "2. QoS 1 fan-in 4x4: delivered msg/s" qos1.rate 0 "" "" -
want 3 fanout && row "3. fan-out 1 → 100, QoS 0: broker CPU µs per delivered message" fanout.cpu 2 "≤ 0.5" "<=" 0.5
want 3 fanout && row "3. fan-out 1 → 100, QoS 0: delivered msg/s" fanout.rate 0 "" "" -
want 4 latency && row "4. 8k msg/s in, 32k out, QoS 0: p99 publish → receive, ms" lat0 2 "≤ 1.5" "<=" 1.5
want 4 latency && row "4. 8k msg/s in, 32k out, QoS 1: p99 publish → receive, ms" lat1 2 "≤ 1.5" "<=" 1.5
want 5 idle && row "5. idle memory per connection, plain, KiB (VmRSS)" idle-plain 1 "≤ 2" "<=" 2
want 5 idle && row "5. idle memory per connection, mTLS, KiB (VmRSS)" idle-mtls 1 "≤ 16" "<=" 16
want 6 storm && row "6. plain connection storm, conn/s (10 at a time)" storm.rate 0 "≥ Mosquitto" ">=" mosquitto
want 6 storm && row "6. plain connection storm: broker CPU µs per connection" storm.cpu 1 "" "" -
want 7 handshake mtls && row "7. full mTLS handshake, ECDSA P-256 device cert: broker CPU ms" hs-ec.cpu 3 "≤ 0.45" "<=" 0.45
want 7 handshake mtls && row "7. full mTLS handshake, RSA-2048 device cert: broker CPU ms" hs-rsa.cpu 3 "≤ 0.45" "<=" 0.45
want 7 handshake mtls && row "7. mTLS handshakes, ECDSA P-256: conn/s (10 at a time)" hs-ec.rate 0 "" "" -
want 7 handshake mtls && row "7. mTLS handshakes, RSA-2048: conn/s (10 at a time)" hs-rsa.rate 0 "" "" -
want 8 qos2 && row "8. QoS 2 4x4 (20 in flight): broker CPU µs per delivered message" qos2.cpu 2 "" "" -
want 8 qos2 && row "8. QoS 2 4x4: delivered msg/s" qos2.rate 0 "" "" -
want 9 retained && row "9. retained, 4 publishers → 4 subscribers, QoS 1: broker CPU µs per delivered message (storing, delivering, clearing)" retained.cpu 2 "" "" -
want 9 retained && row "9. retained: delivered msg/s (subscribers connecting → last message)" retained.rate 0 "" "" -
want 10 persistent && row "10. persistent sessions, QoS 1 4x4: broker CPU µs per delivered message (queueing, delivering)" persistent.cpu 2 "" "" -
want 10 persistent && row "10. persistent sessions: delivered msg/s (subscribers reconnecting → last message)" persistent.rate 0 "" "" -

version_of() {
    case $1 in
        ferrule) echo "Ferrule $("$FERRULE" --version | awk '{ print $2 }') ($BUILT_FROM)" ;;
        mosquitto) mosquitto -h 2>/dev/null | head -1 || true ;;
        rumqttd) echo "rumqttd $("$RUMQTTD" --version 2>/dev/null | awk '{ print $2 }')" ;;
    esac
}
VERSIONS=()
for b in "${ALL[@]}"; do VERSIONS+=("$(version_of "$b")"); done

echo "Broker pinned to core $BROKER_CPU (taskset), ferrule-bench on core $BENCH_CPU; median of $REPEAT run(s) per cell; SCALE=$SCALE; MQTT 3.1.1, plain TCP unless mTLS."
echo
echo "| measure | Ferrule | Mosquitto | rumqttd | F/M | F/R | target (issue 8) | met? |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "‡: some run of this cell lost messages, failed connections or timed out (see RAW)." \
    "F/M, F/R: Ferrule divided by Mosquitto, by rumqttd. CPU: the broker process's user + system" \
    "time over the run (all threads), divided by messages received by all subscribers, by" \
    "connections, by handshakes."
echo
# The generator's and the broker's CPU, each of its one core: near 100 % the one at 100 bounds
# the rate; both well below it, the rest went to waiting, the kernel's loopback work (softirq
# time is charged to neither) or other processes on the same cores.
GROWS=()
for m in qos0.rate qos1.rate qos2.rate fanout.rate lat0 lat1 storm.rate hs-ec.rate hs-rsa.rate; do
    line="| $m |"
    any=
    for b in ferrule mosquitto rumqttd; do
        v=$(fmt "$(mid "${GEN[$m|$b]:-}")" 0)
        [[ $v != - ]] && any=1
        v="$v / $(fmt "$(mid "${BUSY[$m|$b]:-}")" 0)"
        line="$line $v |"
    done
    [[ -n $any ]] && GROWS+=("$line")
done
if ((${#GROWS[@]} > 0)); then
    echo "CPU use during the runs, % of one core (median): ferrule-bench (core $BENCH_CPU) / the broker (core $BROKER_CPU)." \
        "One near 100 bounds the rate; both well below it, the cores went to waiting, to the kernel's" \
        "loopback work (softirq time is charged to neither process) or to other processes."
    echo
    echo "| run | against Ferrule | against Mosquitto | against rumqttd |"
    echo "|---|---:|---:|---:|"
    printf '%s\n' "${GROWS[@]}"
    echo
fi
if want 7 handshake mtls; then
    hs_f_ec=$(median hs-ec.cpu ferrule) hs_f_rsa=$(median hs-rsa.cpu ferrule)
    echo "Crypto floor (\`openssl speed -seconds 2 ecdsap256 rsa2048 ecdhx25519\` on core $BROKER_CPU, $(openssl version | awk '{ print $1, $2 }')):"
    echo
    echo "| operation | ms per op |"
    echo "|---|---:|"
    echo "| ECDSA P-256 sign | ${FLOOR[p256_sign]} |"
    echo "| ECDSA P-256 verify | ${FLOOR[p256_verify]} |"
    echo "| RSA-2048 sign | ${FLOOR[rsa_sign]} |"
    echo "| RSA-2048 verify | ${FLOOR[rsa_verify]} |"
    echo "| X25519 key exchange (derive) | ${FLOOR[x25519]} |"
    echo "| **floor, P-256 device cert** = P-256 sign + P-256 verify + X25519 | **${FLOOR[ec]}** |"
    echo "| **floor, RSA-2048 device cert** = P-256 sign + RSA-2048 verify + X25519 | **${FLOOR[rsa]}** |"
    echo "| Ferrule's broker CPU per handshake ÷ floor, P-256 / RSA-2048 | $(ratio "$hs_f_ec" "${FLOOR[ec]}") / $(ratio "$hs_f_rsa" "${FLOOR[rsa]}") |"
    echo "| all a TLS 1.3 server computes, P-256 device cert = P-256 sign + 2 P-256 verifies (chain, CertificateVerify) + 2 X25519 (keygen, derive) | ${FLOOR[ec2]} |"
    echo "| all a TLS 1.3 server computes, RSA-2048 device cert = P-256 sign + 2 RSA-2048 verifies + 2 X25519 | ${FLOOR[rsa2]} |"
    echo "| Ferrule ÷ that, P-256 / RSA-2048 | $(ratio "$hs_f_ec" "${FLOOR[ec2]}") / $(ratio "$hs_f_rsa" "${FLOOR[rsa2]}") |"
    echo
fi
echo "Machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -sr);" \
    "$(IFS=';'; echo "${VERSIONS[*]}" | sed 's/;/; /g'); rumqttd next_connection_delay_ms $RUMQTTD_DELAY_MS;" \
    "load average $LOAD_BEFORE before, $LOAD_AFTER after."
for s in "${SKIPPED[@]}"; do echo "Not measured: $s"; done
for s in "${EXITED[@]}"; do echo "Exited during a run and restarted (that run not counted): $s"; done
for b in ferrule mosquitto rumqttd; do
    [[ -f $WORK/$b.log ]] || continue
    n=$(grep -ciE 'warn|error' "$WORK/$b.log" || true)
    [[ $n == 0 ]] || { log "$b log: $n warning/error lines, the first:"; grep -iE 'warn|error' "$WORK/$b.log" | head -3 >&2 || true; }
done
