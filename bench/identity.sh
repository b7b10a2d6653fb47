#!/usr/bin/env bash
# Device identity benchmarks against a fresh Ferrule: the mTLS connection rate with registered
# device certificates (ECDSA P-256 and RSA-2048), and the just-in-time registration hold
# latency (CONNECT -> CONNACK of a new device whose certificate an operator activates as soon
# as the broker announces it). Prints markdown tables on stdout; progress goes to stderr.
#
# Ferrule is built in release mode and started on ephemeral loopback ports with a fresh data
# directory. Certificates are made by bench/identity.py (python3 with boto3 and cryptography)
# and registered through the control plane. For comparison, the mTLS connection runs are
# repeated against two private Mosquittos (TLS, require_certificate, the same server
# certificate, both device CAs; one with set_tcp_nodelay, one at its defaults) on free loopback
# ports, if mosquitto is installed. Everything started is stopped on exit and the temporary
# directory removed.
#
# Environment:
#   REPEAT=N        runs per mTLS row; the median by rate is reported (3)
#   CONNECTIONS=N   connections per mTLS run (4000; a quarter for Mosquitto at its defaults)
#   CONCURRENCY=N   connections set up at the same time in mTLS runs (10; also 1 at a time)
#   POOL=N          device certificates per key type (50)
#   DEVICES=N       new devices per JITR run (50)
#   JITR_CONCURRENCY=N  devices (and operator threads) at a time in the concurrent JITR runs (10)
#   MOSQUITTO=0     skip the Mosquitto comparison
#   RAW=FILE        also append every run's JSON line to FILE
#   CARGO_TARGET_DIR  where cargo builds (default: ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-4000}
CONCURRENCY=${CONCURRENCY:-10}
POOL=${POOL:-50}
DEVICES=${DEVICES:-50}
JITR_CONCURRENCY=${JITR_CONCURRENCY:-10}
MOSQUITTO=${MOSQUITTO:-1}
RAW=${RAW:-}
TIMEOUT=120
IDENTITY="$ROOT/bench/identity.py"

log() { printf '%s\n' "$*" >&2; }
die() { log "identity.sh: $*"; exit 1; }

command -v jq >/dev/null || die "jq is needed to read ferrule-bench's JSON output"
python3 -c 'import boto3, cryptography' 2>/dev/null ||
    die "python3 with boto3 and cryptography is needed (pip install boto3 cryptography)"
if [[ $MOSQUITTO == 1 ]] && ! command -v mosquitto >/dev/null; then
    log "mosquitto is not installed: Ferrule only"
    MOSQUITTO=0
fi

log "building ferrule and ferrule-bench (release)..."
(cd "$ROOT" && cargo build --release -p ferrule -p ferrule-bench >&2)
FERRULE=$TARGET/release/ferrule
BENCH=$TARGET/release/ferrule-bench

WORK=$(mktemp -d)
DATA=$WORK/ferrule
PKI=$WORK/pki
FERRULE_PID=
MOSQ_PIDS=()
cleanup() {
    if [[ -n $FERRULE_PID ]] && ! kill -0 "$FERRULE_PID" 2>/dev/null; then
        log "ferrule serve exited before the end; its last log lines:"
        tail -20 "$WORK/ferrule.log" >&2
    fi
    if [[ -n $FERRULE_PID ]]; then kill "$FERRULE_PID" 2>/dev/null && wait "$FERRULE_PID" 2>/dev/null; fi
    for pid in "${MOSQ_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- Ferrule -------------------------------------------------------------------------------
mkdir "$DATA"
"$FERRULE" serve --data-dir "$DATA" --mqtt-listen 127.0.0.1:0 \
    --mqtts-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --log warn \
    >"$WORK/ferrule.log" 2>&1 &
FERRULE_PID=$!
listener() { sed -n "s/^$1 = \"\\(127\\.0\\.0\\.1:[0-9]*\\)\"\$/\\1/p" "$DATA/listeners.toml"; }
for _ in $(seq 300); do
    [[ -f $DATA/listeners.toml ]] && break
    kill -0 "$FERRULE_PID" 2>/dev/null || { cat "$WORK/ferrule.log" >&2; die "ferrule serve exited"; }
    sleep 0.1
done
[[ -f $DATA/listeners.toml ]] || die "ferrule serve did not write listeners.toml"
MQTTS=$(listener mqtts)
MQTT=$(listener mqtt)
API=$(listener api)
[[ -n $MQTTS && -n $MQTT && -n $API ]] || die "listeners.toml lacks mqtts, mqtt or api: $(cat "$DATA/listeners.toml")"
log "ferrule: pid $FERRULE_PID, mqtts $MQTTS, mqtt $MQTT, api $API"
export AWS_SHARED_CREDENTIALS_FILE=$DATA/credentials AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

# --- Certificates --------------------------------------------------------------------------
log "making certificates: $POOL ECDSA P-256 + $POOL RSA-2048 devices, 3 x $DEVICES for JITR..."
python3 "$IDENTITY" pki "$PKI" --ec "$POOL" --rsa "$POOL" \
    --jitr-set "jitr-a=$DEVICES" --jitr-set "jitr-b=$DEVICES" --jitr-set "jitr-c=$DEVICES"
log "registering them (3 CAs, $((2 * POOL)) ACTIVE certificates with an allow-all policy)..."
python3 "$IDENTITY" provision "$PKI" --endpoint "http://$API" >"$WORK/cas.txt"

# --- Mosquitto with TLS and required client certificates -----------------------------------
# Two private instances on free loopback ports, both with Ferrule's server certificate and
# either device CA: one with set_tcp_nodelay true, one at its defaults. At its defaults its
# CONNACK leaves after the TLS 1.3 session tickets and waits for their ACK (Nagle against the
# client's delayed ACK), about 40 ms; the first instance shows what it costs without that wait.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
answers_tls() {
    "$BENCH" connect --port "$1" --cafile "$DATA/server-ca.pem" --certs "$PKI/ec" \
        --connections 1 --timeout 5 --json 2>/dev/null | jq -e '.succeeded == 1' >/dev/null
}
# start_mosquitto NAME EXTRA_CONFIG_LINE: sets STARTED_PID and STARTED_PORT (empty if it did
# not come up).
start_mosquitto() {
    local dir=$WORK/$1 port
    STARTED_PID=
    STARTED_PORT=
    mkdir "$dir"
    cp "$DATA/server.pem" "$DATA/server.key" "$dir/"
    cat "$PKI/ca-ec.pem" "$PKI/ca-rsa.pem" >"$dir/cas.pem"
    # Readable by the mosquitto user, which it switches to when started as root.
    chmod 755 "$WORK" "$dir" && chmod 644 "$dir"/*
    port=$(free_port)
    {
        [[ -n $2 ]] && echo "$2"
        echo "listener $port 127.0.0.1"
        echo "cafile $dir/cas.pem"
        echo "certfile $dir/server.pem"
        echo "keyfile $dir/server.key"
        echo "require_certificate true"
        echo "allow_anonymous true"
        echo "persistence false"
    } >"$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
    STARTED_PID=$!
    MOSQ_PIDS+=("$STARTED_PID")
    for _ in $(seq 50); do
        if answers_tls "$port"; then STARTED_PORT=$port; return; fi
        sleep 0.1
    done
    log "mosquitto ($1) did not come up with TLS; its log:"
    cat "$dir/mosquitto.log" >&2
}
if [[ $MOSQUITTO == 1 ]]; then
    start_mosquitto mosquitto-nodelay "set_tcp_nodelay true"
    MOSQ_PID=$STARTED_PID MOSQ_PORT=$STARTED_PORT
    start_mosquitto mosquitto-defaults ""
    MOSQD_PID=$STARTED_PID MOSQD_PORT=$STARTED_PORT
    if [[ -z $MOSQ_PORT || -z $MOSQD_PORT ]]; then
        log "Ferrule only"
        MOSQUITTO=0
    else
        log "mosquitto: pid $MOSQ_PID on $MOSQ_PORT (set_tcp_nodelay true), pid $MOSQD_PID on $MOSQD_PORT (defaults)"
    fi
fi

# --- Runs ----------------------------------------------------------------------------------
cpu_ticks() { [[ -n ${1:-} && -r /proc/$1/stat ]] && awk '{ print $14 + $15 }' "/proc/$1/stat" || echo; }

# Runs ferrule-bench SCENARIO ARGS... once; prints its JSON with the broker's (PID) CPU time
# added as broker_cpu_s.
run_once() {
    local pid=$1 scenario=$2 before after json
    shift 2
    before=$(cpu_ticks "$pid")
    # Common flags first: the jitr scenario ends with `-- OPERATOR COMMAND`.
    if ! json=$("$BENCH" "$scenario" --timeout "$TIMEOUT" --json "$@" 2>"$WORK/bench.err"); then
        log "  ferrule-bench $scenario failed:"
        tail -5 "$WORK/bench.err" >&2
        json='{"scenario":"failed"}'
    fi
    after=$(cpu_ticks "$pid")
    if [[ -n $before && -n $after ]]; then
        # /proc/PID/stat counts in clock ticks of 1/100 s.
        json=$(jq -c --argjson cpu "$(((after - before) * 10))" '. + {broker_cpu_s: ($cpu / 1000)}' <<<"$json")
    fi
    [[ -n $RAW ]] && printf '%s\n' "$json" >>"$RAW"
    printf '%s\n' "$json"
}

# Integer microseconds (or "-") of field $1 of JSON $2; ms: milliseconds with one decimal.
num() { jq -r "$1 | if . == null then \"-\" else (. | floor | tostring) end" <<<"$2"; }
ms() { jq -r "$1 | if . == null then \"-\" else (. / 100 | round / 10 | tostring) end" <<<"$2"; }
cpu_per() {
    jq -r '(.succeeded // 0) as $n | if .broker_cpu_s == null or $n == 0 then "-"
        else .broker_cpu_s * 1e6 / $n | round end' <<<"$1"
}

# Load average, and the share of time some runnable task waited for a CPU over the last minute.
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg), CPU pressure $(sed -n 's/^some avg10=[^ ]* avg60=\([^ ]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo -) %"; }
LOAD_BEFORE=$(load)
CA=(--cafile "$DATA/server-ca.pem")
N=(--connections "$CONNECTIONS")
F_TLS="--port ${MQTTS##*:} ${CA[*]}"
# label|broker pid|ferrule-bench connect arguments; each Ferrule run is followed by the same
# run against Mosquitto, so that both see about the same background load.
RUNS=(
    "Ferrule, ECDSA P-256, $CONCURRENCY at a time|$FERRULE_PID|$F_TLS --certs $PKI/ec ${N[*]} --concurrency $CONCURRENCY"
    "Mosquitto (set_tcp_nodelay), ECDSA P-256, $CONCURRENCY at a time|mosq|--certs $PKI/ec ${N[*]} --concurrency $CONCURRENCY"
    "Ferrule, RSA-2048, $CONCURRENCY at a time|$FERRULE_PID|$F_TLS --certs $PKI/rsa ${N[*]} --concurrency $CONCURRENCY"
    "Mosquitto (set_tcp_nodelay), RSA-2048, $CONCURRENCY at a time|mosq|--certs $PKI/rsa ${N[*]} --concurrency $CONCURRENCY"
    "Ferrule, ECDSA P-256, 1 at a time|$FERRULE_PID|$F_TLS --certs $PKI/ec ${N[*]} --concurrency 1"
    "Mosquitto (set_tcp_nodelay), ECDSA P-256, 1 at a time|mosq|--certs $PKI/ec ${N[*]} --concurrency 1"
    "Mosquitto (defaults), ECDSA P-256, $CONCURRENCY at a time|mosqd|--certs $PKI/ec --connections $((CONNECTIONS / 4)) --concurrency $CONCURRENCY"
    "Ferrule, plain TCP, no certificate (reference), $CONCURRENCY at a time|$FERRULE_PID|--port ${MQTT##*:} ${N[*]} --concurrency $CONCURRENCY"
)

ROWS=()
NEGOTIATED=
for run in "${RUNS[@]}"; do
    IFS='|' read -r name pid args <<<"$run"
    case $pid in
        mosq) [[ $MOSQUITTO == 1 ]] || continue; pid=$MOSQ_PID args="--port $MOSQ_PORT ${CA[*]} $args" ;;
        mosqd) [[ $MOSQUITTO == 1 ]] || continue; pid=$MOSQD_PID args="--port $MOSQD_PORT ${CA[*]} $args" ;;
    esac
    log "running: $name"
    results=()
    for _ in $(seq "$REPEAT"); do
        # shellcheck disable=SC2086 # args is a list of flags
        results+=("$(run_once "$pid" connect $args)")
    done
    j=$(printf '%s\n' "${results[@]}" | jq -s -c 'sort_by(.connect_rate // 0) | .[length / 2 | floor]')
    [[ -n $NEGOTIATED ]] || NEGOTIATED=$(jq -r '.negotiated // empty' <<<"$j")
    ROWS+=("| $name | $(num .connect_rate "$j") | $(num .connect_p50_us "$j") / $(num .connect_p99_us "$j") | $(num .handshake_p50_us "$j") / $(num .handshake_p99_us "$j") | $(num .connack_p50_us "$j") / $(num .connack_p99_us "$j") | $(num .failed "$j") | $(cpu_per "$j") | $(num .client_cpu_pct "$j") |")
done

JROWS=()
# name|devices at a time|operator workers
JITR_RUNS=(
    "jitr-a|1|1"
    "jitr-b|$JITR_CONCURRENCY|1"
    "jitr-c|$JITR_CONCURRENCY|$JITR_CONCURRENCY"
)
for run in "${JITR_RUNS[@]}"; do
    IFS='|' read -r set c workers <<<"$run"
    name="$DEVICES devices, $c at a time, operator $workers at a time"
    log "running: JITR, $name"
    j=$(run_once "$FERRULE_PID" jitr --port "${MQTTS##*:}" --events-port "${MQTT##*:}" \
        "${CA[@]}" --certs "$PKI/$set" --concurrency "$c" \
        -- python3 "$IDENTITY" operator --endpoint "http://$API" --workers "$workers")
    p() { echo "$(ms ".${1}_p50_us" "$j") / $(ms ".${1}_p95_us" "$j") / $(ms ".${1}_max_us" "$j")"; }
    JROWS+=("| $name | $(num .succeeded "$j") / $(num .failed "$j") | $(p hold) | $(p event) | $(p activate) | $(p release) | $(num .connack_before_answer "$j") | $(p update) | $(p attach) |")
    errors=$(jq -r '.errors // [] | .[]' <<<"$j")
    [[ -z $errors ]] || log "  errors: $errors"
done

# --- Report --------------------------------------------------------------------------------
mosq_version=
[[ $MOSQUITTO == 1 ]] && mosq_version=$(mosquitto -h 2>/dev/null | head -1 || true)
echo "Ferrule $("$FERRULE" --version | awk '{ print $2 }')${mosq_version:+ vs $mosq_version};" \
    "$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)); MQTT 3.1.1;" \
    "before: $LOAD_BEFORE; after: $(load)."
echo
echo "mTLS connection setup: $CONNECTIONS connections per run, $POOL registered ACTIVE device" \
    "certificates per key type taken in turn, full handshakes (no resumption), median of" \
    "$REPEAT run(s) by rate; negotiated: ${NEGOTIATED:-?}; server certificate ECDSA P-256."
echo
echo "| Run | conn/s | TCP + TLS + CONNECT → CONNACK p50 / p99 µs | TCP + TLS handshake p50 / p99 µs | CONNECT → CONNACK p50 / p99 µs | failed | broker CPU µs/conn | client CPU % |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "JITR hold latency (ms, p50 / p95 / max; --jitr-mode hold): $DEVICES new ECDSA P-256 devices" \
    "per run under an auto-registration CA; the operator (persistent boto3 clients, one per" \
    "worker thread) activates each certificate (UpdateCertificate ACTIVE, then AttachPolicy)" \
    "when its registered event arrives on the plain listener."
echo
echo "| Run | ok / failed | CONNECT → CONNACK | CONNECT → event | event → operator done | operator done → CONNACK | CONNACK first | UpdateCertificate call | AttachPolicy call |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${JROWS[@]}"

warnings=$(grep -cE ' (WARN|ERROR) ' "$WORK/ferrule.log" || true)
log "ferrule log: $warnings WARN/ERROR lines"
grep -E ' (WARN|ERROR) ' "$WORK/ferrule.log" | head -5 >&2 || true
