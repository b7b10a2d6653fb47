#!/usr/bin/env bash
# Runs the same ferrule-bench scenarios against Ferrule and Mosquitto on this machine, back to
# back, and prints the results as a markdown table with Ferrule/Mosquitto ratios on stdout
# (progress goes to stderr).
#
# Ferrule is built in release mode and started on ephemeral loopback ports with a fresh data
# directory; it is stopped on exit. Mosquitto is the one answering on 127.0.0.1:1883, or, if
# none does, a private one started on a free loopback port (and stopped on exit).
#
# Environment:
#   REPEAT=N        runs per scenario and broker; the median by throughput is reported (3)
#   PROTOCOL=3.1.1  MQTT version of every connection: 3.1.1 or 5 (3.1.1)
#   SCALE=1.0       multiplies every message and connection count (e.g. 0.1 for a smoke test)
#   RAW=FILE        also append every run's JSON line to FILE
#   CARGO_TARGET_DIR  where cargo builds (default: ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPEAT=${REPEAT:-3}
PROTOCOL=${PROTOCOL:-3.1.1}
SCALE=${SCALE:-1.0}
RAW=${RAW:-}
TIMEOUT=60

log() { printf '%s\n' "$*" >&2; }
die() { log "compare.sh: $*"; exit 1; }

command -v jq >/dev/null || die "jq is needed to read ferrule-bench's JSON output"
command -v mosquitto >/dev/null || die "mosquitto is not installed"

log "building ferrule and ferrule-bench (release)..."
(cd "$ROOT" && cargo build --release -p ferrule -p ferrule-bench >&2)
FERRULE=$TARGET/release/ferrule
BENCH=$TARGET/release/ferrule-bench

WORK=$(mktemp -d)
FERRULE_PID=
MOSQ_STARTED_PID=
cleanup() {
    if [[ -n $FERRULE_PID ]] && ! kill -0 "$FERRULE_PID" 2>/dev/null; then
        log "ferrule serve exited before the end; its last log lines:"
        tail -20 "$WORK/ferrule.log" >&2
    fi
    if [[ -n $FERRULE_PID ]]; then kill "$FERRULE_PID" 2>/dev/null && wait "$FERRULE_PID" 2>/dev/null; fi
    if [[ -n $MOSQ_STARTED_PID ]]; then kill "$MOSQ_STARTED_PID" 2>/dev/null && wait "$MOSQ_STARTED_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- Ferrule -------------------------------------------------------------------------------
mkdir "$WORK/ferrule"
"$FERRULE" serve --data-dir "$WORK/ferrule" --mqtt-listen 127.0.0.1:0 \
    --mqtts-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --log warn \
    >"$WORK/ferrule.log" 2>&1 &
FERRULE_PID=$!
FERRULE_PORT=
for _ in $(seq 300); do
    if [[ -f $WORK/ferrule/listeners.toml ]]; then
        FERRULE_PORT=$(sed -n 's/^mqtt = "127\.0\.0\.1:\([0-9]*\)"$/\1/p' "$WORK/ferrule/listeners.toml")
        [[ -n $FERRULE_PORT ]] && break
    fi
    kill -0 "$FERRULE_PID" 2>/dev/null || { cat "$WORK/ferrule.log" >&2; die "ferrule serve exited"; }
    sleep 0.1
done
[[ -n $FERRULE_PORT ]] || die "ferrule serve did not write its mqtt listener to listeners.toml"
log "ferrule: pid $FERRULE_PID on 127.0.0.1:$FERRULE_PORT"

# --- Mosquitto -----------------------------------------------------------------------------
answers() {
    local json
    json=$("$BENCH" connect --port "$1" --connections 1 --timeout 5 --json 2>/dev/null) &&
        [[ $(jq -r .succeeded <<<"$json") == 1 ]]
}
if answers 1883; then
    MOSQ_PORT=1883
    MOSQ_PID=$(ss -ltnpH 'sport = :1883' 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1 || true)
    [[ -n $MOSQ_PID ]] || MOSQ_PID=$(pgrep -x mosquitto | head -1 || true)
else
    MOSQ_PORT=
    for port in $(shuf -i 20000-32000 -n 50); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then MOSQ_PORT=$port; break; fi
    done
    [[ -n $MOSQ_PORT ]] || die "no free port for mosquitto"
    # A config file rather than -p, so that it listens on loopback only.
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MOSQ_PORT" >"$WORK/mosquitto.conf"
    mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    MOSQ_STARTED_PID=$!
    MOSQ_PID=$MOSQ_STARTED_PID
    for _ in $(seq 50); do answers "$MOSQ_PORT" && break; sleep 0.1; done
    answers "$MOSQ_PORT" || die "mosquitto did not start on $MOSQ_PORT"
fi
log "mosquitto: pid ${MOSQ_PID:-?} on 127.0.0.1:$MOSQ_PORT"

# --- Scenarios -----------------------------------------------------------------------------
# Counts are sized so that each run takes roughly 5-10 s against Mosquitto on a 2-core VM.
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s); print (v < 1 ? 1 : v) }'; }
SCENARIOS=(
    "QoS 0, 1 → 1|pubsub --qos 0 --publishers 1 --subscribers 1 --messages $(scaled 600000)"
    "QoS 0, 10 → 10|pubsub --qos 0 --publishers 10 --subscribers 10 --messages $(scaled 6000)"
    "QoS 0, 1 → 100|pubsub --qos 0 --publishers 1 --subscribers 100 --messages $(scaled 5000)"
    "QoS 1, 1 → 1|pubsub --qos 1 --publishers 1 --subscribers 1 --messages $(scaled 150000)"
    "QoS 1, 10 → 10|pubsub --qos 1 --publishers 10 --subscribers 10 --messages $(scaled 4000)"
    "QoS 1, 1 → 100|pubsub --qos 1 --publishers 1 --subscribers 100 --messages $(scaled 5000)"
    "QoS 0, 1 → 1 at 5k msg/s|pubsub --qos 0 --publishers 1 --subscribers 1 --rate 5000 --messages $(scaled 30000)"
    "QoS 1, 1 → 1 at 5k msg/s|pubsub --qos 1 --publishers 1 --subscribers 1 --rate 5000 --messages $(scaled 30000)"
    "connect (10 at a time)|connect --concurrency 10 --connections $(scaled 25000)"
)

cpu_ticks() { [[ -n ${1:-} && -r /proc/$1/stat ]] && awk '{ print $14 + $15 }' "/proc/$1/stat" || echo; }

# Runs one scenario against one broker REPEAT times; prints the median run's JSON, with the
# broker's CPU time over the run added as broker_cpu_s.
run_one() {
    local port=$1 pid=$2 args=$3 runs=() extra=()
    [[ $args == pubsub* ]] && extra=(--payload 64)
    for _ in $(seq "$REPEAT"); do
        local before after json
        before=$(cpu_ticks "$pid")
        # shellcheck disable=SC2086 # args is a list of flags
        if ! json=$("$BENCH" $args "${extra[@]}" --port "$port" --protocol "$PROTOCOL" \
            --timeout "$TIMEOUT" --json 2>"$WORK/bench.err"); then
            log "  ferrule-bench failed on port $port: $(tail -1 "$WORK/bench.err")"
            json='{"scenario":"failed"}'
        fi
        after=$(cpu_ticks "$pid")
        if [[ -n $before && -n $after ]]; then
            # /proc/PID/stat counts in clock ticks of 1/100 s.
            json=$(jq -c --argjson cpu "$(((after - before) * 10))" '. + {broker_cpu_s: ($cpu / 1000)}' <<<"$json")
        else
            json=$(jq -c '. + {broker_cpu_s: null}' <<<"$json")
        fi
        [[ -n $RAW ]] && printf '%s\n' "$json" >>"$RAW"
        runs+=("$json")
    done
    printf '%s\n' "${runs[@]}" | jq -s -c 'sort_by(.throughput_msgs // .connect_rate) | .[length / 2 | floor]'
}

# Markdown cells from a run's JSON.
rate() { jq -r '(.throughput_msgs // .connect_rate) | if . == null then "failed" else floor end' <<<"$1"; }
lat() { jq -r '[(.latency_p50_us // .connect_p50_us), (.latency_p99_us // .connect_p99_us)] | map(if . == null then "-" else (. | floor | tostring) end) | join(" / ")' <<<"$1"; }
p99() { jq -r '(.latency_p99_us // .connect_p99_us) // 0' <<<"$1"; }
lost() {
    jq -r 'if .scenario == "connect" then .failed
        elif .lost == null then "-"
        elif .lost == 0 then "0"
        else "\(.lost) (\(.lost * 100 / .expected | round)%)" end' <<<"$1"
}
# Broker CPU time per delivered message (connect: per connection), in microseconds.
cpu() {
    jq -r '(.received // .succeeded) as $n
        | if .broker_cpu_s == null or ($n // 0) == 0 then "-"
          else .broker_cpu_s * 1e6 / $n | . * 10 | round / 10 end' <<<"$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
for scenario in "${SCENARIOS[@]}"; do
    name=${scenario%%|*}
    args=${scenario#*|}
    log "running: $name"
    f=$(run_one "$FERRULE_PORT" "$FERRULE_PID" "$args")
    m=$(run_one "$MOSQ_PORT" "${MOSQ_PID:-}" "$args")
    ROWS+=("| $name | $(rate "$f") | $(rate "$m") | $(ratio "$(rate "$f")" "$(rate "$m")") | $(lat "$f") | $(lat "$m") | $(ratio "$(p99 "$f")" "$(p99 "$m")") | $(lost "$f") | $(lost "$m") | $(cpu "$f") | $(cpu "$m") |")
done

echo "Ferrule $("$FERRULE" --version | awk '{ print $2 }') vs $(mosquitto -h 2>/dev/null | head -1 || true);" \
    "MQTT $PROTOCOL, 64-byte payloads, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))," \
    "median of $REPEAT run(s) per cell; load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after."
echo
echo "| Scenario | Ferrule msg/s | Mosquitto msg/s | F/M | Ferrule p50 / p99 µs | Mosquitto p50 / p99 µs | F/M p99 | Ferrule lost | Mosquitto lost | Ferrule CPU µs/msg | Mosquitto CPU µs/msg |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "msg/s: messages received by all subscribers per second (connect: CONNACKs per second)." \
    "Latency: publish → receive (connect: TCP connect + CONNECT → CONNACK)." \
    "Lost: deliveries that never arrived (connect: failed connections)." \
    "CPU µs/msg: broker CPU time (user + system, all threads) over the run per message received" \
    "(connect: per connection)."
