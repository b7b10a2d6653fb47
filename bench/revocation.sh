#!/usr/bin/env bash
# Revocation and idle-memory benchmarks against a fresh Ferrule (issue 8): how long a connected
# mTLS device keeps its connection after an operator revokes its certificate (UpdateCertificate
# REVOKED), one at a time and all at once; and the broker's resident memory per idle
# connection, plain TCP and mTLS with distinct registered certificates. Prints markdown tables
# on stdout; progress goes to stderr.
#
# Ferrule is built in release mode and started on ephemeral loopback ports. Certificates are
# made by bench/identity.py (python3 with boto3 and cryptography) and registered ACTIVE with an
# allow-all policy through the control plane. Each measurement then gets a freshly started
# broker on the same data directory, so that memory one run freed is not counted (as reused)
# by the next. Everything started is stopped on exit and the temporary directory removed.
#
# Environment:
#   DEVICES=N       devices per revoke run (500; two runs, each with its own certificates)
#   CONNECTIONS=N   idle connections per idle run (2000; needs `ulimit -n` above it)
#   WAIT_MS=N       a device not disconnected this long after its revocation was asked counts
#                   as not disconnected (2000)
#   SETTLE=S        seconds between the last CONNACK (or close) and reading the memory (2)
#   RAW=FILE        also append every run's JSON line to FILE
#   CARGO_TARGET_DIR  where cargo builds (default: ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DEVICES=${DEVICES:-500}
CONNECTIONS=${CONNECTIONS:-2000}
WAIT_MS=${WAIT_MS:-2000}
SETTLE=${SETTLE:-2}
RAW=${RAW:-}
TIMEOUT=300
IDENTITY="$ROOT/bench/identity.py"

log() { printf '%s\n' "$*" >&2; }
die() { log "revocation.sh: $*"; exit 1; }

command -v jq >/dev/null || die "jq is needed to read ferrule-bench's JSON output"
python3 -c 'import boto3, cryptography' 2>/dev/null ||
    die "python3 with boto3 and cryptography is needed (pip install boto3 cryptography)"

# Both the broker and the bench hold one descriptor per connection, plus their own.
NEED_FDS=$((CONNECTIONS + 200))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $NEED_FDS ]]; then
    ulimit -n "$NEED_FDS" 2>/dev/null ||
        die "ulimit -n is $(ulimit -n) and cannot be raised to $NEED_FDS for $CONNECTIONS connections (hard limit $(ulimit -Hn)); set CONNECTIONS lower"
fi
log "ulimit -n: $(ulimit -n) (needs $NEED_FDS)"

log "building ferrule and ferrule-bench (release)..."
(cd "$ROOT" && cargo build --release -p ferrule -p ferrule-bench >&2)
FERRULE=$TARGET/release/ferrule
BENCH=$TARGET/release/ferrule-bench

WORK=$(mktemp -d)
DATA=$WORK/ferrule
PKI=$WORK/pki
FERRULE_PID=
stop_ferrule() {
    if [[ -n $FERRULE_PID ]]; then
        if ! kill -0 "$FERRULE_PID" 2>/dev/null; then
            log "ferrule serve exited before the end; its last log lines:"
            tail -20 "$WORK/ferrule.log" >&2
        fi
        kill "$FERRULE_PID" 2>/dev/null && wait "$FERRULE_PID" 2>/dev/null || true
        warnings=$(grep -cE ' (WARN|ERROR) ' "$WORK/ferrule.log" || true)
        log "ferrule (pid $FERRULE_PID) stopped; its log has $warnings WARN/ERROR lines"
        grep -E ' (WARN|ERROR) ' "$WORK/ferrule.log" | head -3 >&2 || true
        FERRULE_PID=
    fi
}
cleanup() {
    stop_ferrule
    rm -rf "$WORK"
}
trap cleanup EXIT

listener() { sed -n "s/^$1 = \"\\(127\\.0\\.0\\.1:[0-9]*\\)\"\$/\\1/p" "$DATA/listeners.toml"; }
# Starts a fresh `ferrule serve` on the data directory; sets FERRULE_PID, MQTTS, MQTT, API.
start_ferrule() {
    stop_ferrule
    mkdir -p "$DATA"
    rm -f "$DATA/listeners.toml"
    "$FERRULE" serve --data-dir "$DATA" --mqtt-listen 127.0.0.1:0 \
        --mqtts-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --log warn \
        >"$WORK/ferrule.log" 2>&1 &
    FERRULE_PID=$!
    for _ in $(seq 300); do
        [[ -f $DATA/listeners.toml ]] && [[ -n $(listener api) ]] && break
        kill -0 "$FERRULE_PID" 2>/dev/null || { cat "$WORK/ferrule.log" >&2; die "ferrule serve exited"; }
        sleep 0.1
    done
    MQTTS=$(listener mqtts)
    MQTT=$(listener mqtt)
    API=$(listener api)
    [[ -n $MQTTS && -n $MQTT && -n $API ]] || die "listeners.toml lacks mqtts, mqtt or api"
    log "ferrule: pid $FERRULE_PID, mqtts $MQTTS, mqtt $MQTT, api $API"
}

start_ferrule
export AWS_SHARED_CREDENTIALS_FILE=$DATA/credentials AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

# --- Certificates --------------------------------------------------------------------------
log "making certificates: 20 warm-up, $CONNECTIONS idle, 2 x $DEVICES revoke (ECDSA P-256)..."
python3 "$IDENTITY" pki "$PKI" --ec 20 --rsa 0 --ec-set "idle=$CONNECTIONS" \
    --ec-set "revoke-a=$DEVICES" --ec-set "revoke-b=$DEVICES"
log "registering them (ACTIVE, allow-all policy)..."
python3 "$IDENTITY" provision "$PKI" --endpoint "http://$API" \
    --set idle --set revoke-a --set revoke-b >/dev/null

# --- Runs ----------------------------------------------------------------------------------
run_once() {
    local json
    if ! json=$("$BENCH" "$@" 2>"$WORK/bench.err"); then
        log "  ferrule-bench $1 failed:"
        tail -5 "$WORK/bench.err" >&2
        json='{"scenario":"failed"}'
    fi
    [[ -n $RAW ]] && printf '%s\n' "$json" >>"$RAW"
    errors=$(jq -r '.errors // [] | .[]' <<<"$json")
    [[ -z $errors ]] || log "  errors: $errors"
    printf '%s\n' "$json"
}
num() { jq -r "$1 | if . == null then \"-\" else (. | floor | tostring) end" <<<"$2"; }
dec() { jq -r "$1 | if . == null then \"-\" else (. * 10 | round / 10 | tostring) end" <<<"$2"; }
ms() { jq -r "$1 | if . == null then \"-\" else (. / 10 | round / 100 | tostring) end" <<<"$2"; }
mib() { jq -r "$1 | if . == null then \"-\" else (. / 102.4 | round / 10 | tostring) end" <<<"$2"; }
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg), CPU pressure $(sed -n 's/^some avg10=[^ ]* avg60=\([^ ]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo -) %"; }
LOAD_BEFORE=$(load)
CA=(--cafile "$DATA/server-ca.pem")

IROWS=()
idle_row() {
    IROWS+=("| $1 | $(num .connected "$2") / $(num .failed "$2") | $(mib .rss_before_kib "$2") | $(mib .rss_held_kib "$2") | $(mib .rss_after_kib "$2") | $(dec .kib_per_conn "$2") | $(dec .anon_kib_per_conn "$2") | $3 |")
}
log "running: idle, plain TCP, $CONNECTIONS connections (fresh broker, 50 warm-up connections)"
start_ferrule
"$BENCH" connect --port "${MQTT##*:}" --connections 50 --timeout 30 >/dev/null
sleep 1
j=$(run_once idle --port "${MQTT##*:}" --connections "$CONNECTIONS" --broker-pid "$FERRULE_PID" \
    --settle "$SETTLE" --timeout "$TIMEOUT" --json)
idle_row "plain TCP, keep alive 0" "$j" "≤ 2"

log "running: idle, mTLS, $CONNECTIONS connections (fresh broker, 50 warm-up connections)"
start_ferrule
"$BENCH" connect --port "${MQTTS##*:}" "${CA[@]}" --certs "$PKI/ec" --connections 50 --timeout 30 >/dev/null
sleep 1
j=$(run_once idle --port "${MQTTS##*:}" "${CA[@]}" --certs "$PKI/idle" --connections "$CONNECTIONS" \
    --broker-pid "$FERRULE_PID" --settle "$SETTLE" --timeout "$TIMEOUT" --json)
NEGOTIATED=$("$BENCH" connect --port "${MQTTS##*:}" "${CA[@]}" --certs "$PKI/ec" --connections 1 --json 2>/dev/null | jq -r '.negotiated // "?"')
idle_row "mTLS, distinct ECDSA P-256 certificates, keep alive 0" "$j" "≤ 16"

RROWS=()
log "running: revoke, $DEVICES devices, one at a time (fresh broker)"
start_ferrule
OPERATOR=(-- python3 "$IDENTITY" operator --endpoint "http://$API" --action revoke)
revoke_row() {
    p() { echo "$(ms ".${1}_p50_us" "$2") / $(ms ".${1}_p95_us" "$2") / $(ms ".${1}_p99_us" "$2") / $(ms ".${1}_max_us" "$2")"; }
    RROWS+=("| $1 | $(num .connected "$2") / $(num .connect_failed "$2") | $(num .disconnected "$2") / $(num .not_disconnected "$2") | $(p ask "$2") | $(p answer "$2") | $(num .closed_before_answer "$2") | $(p update "$2") | $(num .by_disconnect "$2") / $(num .by_eof "$2") / $(num .by_error "$2") | $(num .closed_unasked "$2") |")
}
j=$(run_once revoke --port "${MQTTS##*:}" "${CA[@]}" --certs "$PKI/revoke-a" --wait-ms "$WAIT_MS" \
    --timeout "$TIMEOUT" --json "${OPERATOR[@]}")
revoke_row "$DEVICES devices, one at a time" "$j"
log "running: revoke, $DEVICES devices, all at once (same broker, other certificates)"
j=$(run_once revoke --port "${MQTTS##*:}" "${CA[@]}" --certs "$PKI/revoke-b" --wait-ms "$WAIT_MS" \
    --all-at-once --timeout "$TIMEOUT" --json "${OPERATOR[@]}")
revoke_row "$DEVICES devices, all at once" "$j"
stop_ferrule

# --- Report --------------------------------------------------------------------------------
echo "Ferrule $("$FERRULE" --version | awk '{ print $2 }'); $(nproc) cores" \
    "($(lscpu | sed -n 's/^Model name: *//p' | head -1)); MQTT 3.1.1; ulimit -n $(ulimit -n);" \
    "before: $LOAD_BEFORE; after: $(load)."
echo
echo "Idle memory: $CONNECTIONS connections held per run, each run on a freshly started broker" \
    "after 50 warm-up connections; broker VmRSS (/proc/PID/status) before the first CONNECT," \
    "$SETTLE s after the last CONNACK, and $SETTLE s after closing them all; mTLS negotiated: $NEGOTIATED."
echo
echo "| Run | held / failed | VmRSS before MiB | VmRSS held MiB | VmRSS after closing MiB | KiB per connection (VmRSS) | KiB per connection (RssAnon) | issue 8 target KiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${IROWS[@]}"
echo
echo "Revocation (ms, p50 / p95 / p99 / max): $DEVICES connected devices per run (mTLS, each" \
    "its own registered ACTIVE ECDSA P-256 certificate, keep alive 0); the operator" \
    "(bench/identity.py, one persistent boto3 client) calls UpdateCertificate REVOKED for each;" \
    "closed = the broker's DISCONNECT or end of stream; a device not closed within $WAIT_MS ms" \
    "of its ask counts as not disconnected. Issue 8 target: under 100 ms p99."
echo
echo "| Run | connected / failed | disconnected / not within ${WAIT_MS} ms | ask → closed | operator's answer → closed | closed before answer | UpdateCertificate call | closed by DISCONNECT / EOF / error | closed before being revoked |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${RROWS[@]}"
