#!/usr/bin/env bash
# Rules engine throughput against a fresh Ferrule: the same publish load with no topic rule
# (baseline: subscriber on the published topics) and with one rule
#   SELECT *, topic(2) AS device FROM 'bench/+/data' WHERE temp > 20
# republishing to out/${topic(2)} (subscriber on out/#), flat out and at a fixed rate; then
# the rule alone at rising rates, to find the highest rate it takes without dropping messages.
# Prints markdown tables on stdout; progress goes to stderr.
#
# Ferrule is built in release mode and started on ephemeral loopback ports with a fresh data
# directory (anonymous clients of the plain listener have full access). The rule is created
# and deleted through the control plane with the aws CLI. Publishers send JSON payloads
# ({"temp":25,"r":RUN,"p":N,"s":SEQ,"t":NS,"pad":"xx..."}, 80 bytes): publisher N publishes
# to bench/{run}pN/data, so topic(2) is the device. Broker CPU time, and the time its threads
# waited for a CPU, come from /proc/PID/stat and /proc/PID/task/*/schedstat; rule runs and
# drops from GET /metrics, before and after each run. Everything started is stopped on exit
# and the temporary directory removed.
#
# Environment:
#   REPEAT=N        runs per row, baseline and rule runs interleaved; the median by
#                   throughput is reported (3)
#   PUBLISHERS=N    publishing connections, one device each (4); one subscriber
#   MESSAGES=N      messages per publisher in the flat-out rows (1000000)
#   RATE=N          total msg/s of the rate-limited rows (5000), for RATE_SECONDS (6)
#   SWEEP="R ..."   total msg/s to try the rule at, in order, stopping at the first that loses
#                   messages ("10000 20000 40000 60000 80000 100000 120000 160000"),
#                   SWEEP_SECONDS each (4); then BISECT more runs between the last rate
#                   without loss and the first with (2); then, for reference, the highest rate
#                   without loss once more without the rule
#   PERF=FILE       also profile the broker with perf during one more run at the first rate
#                   that lost messages, and write the top of the report to FILE
#   RAW=FILE        also append every run's JSON line to FILE
#   CARGO_TARGET_DIR  where cargo builds (default: ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPEAT=${REPEAT:-3}
PUBLISHERS=${PUBLISHERS:-4}
MESSAGES=${MESSAGES:-1000000}
RATE=${RATE:-5000}
RATE_SECONDS=${RATE_SECONDS:-6}
SWEEP=${SWEEP:-10000 20000 40000 60000 80000 100000 120000 160000}
SWEEP_SECONDS=${SWEEP_SECONDS:-4}
BISECT=${BISECT:-2}
PERF=${PERF:-}
RAW=${RAW:-}
TIMEOUT=60
RULE=bench_rule
SQL="SELECT *, topic(2) AS device FROM 'bench/+/data' WHERE temp > 20"

log() { printf '%s\n' "$*" >&2; }
die() { log "rules.sh: $*"; exit 1; }

command -v jq >/dev/null || die "jq is needed to read ferrule-bench's JSON output"
command -v curl >/dev/null || die "curl is needed to read the broker's metrics"
command -v aws >/dev/null || die "the aws CLI is needed to create the topic rule"
if [[ -n $PERF ]] && ! command -v perf >/dev/null; then
    log "perf is not installed: no profile"
    PERF=
fi

log "building ferrule and ferrule-bench (release)..."
(cd "$ROOT" && cargo build --release -p ferrule -p ferrule-bench >&2)
FERRULE=$TARGET/release/ferrule
BENCH=$TARGET/release/ferrule-bench

WORK=$(mktemp -d)
DATA=$WORK/ferrule
FERRULE_PID=
SAMPLER_PID=
cleanup() {
    if [[ -n $SAMPLER_PID ]]; then kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null; fi
    if [[ -n $FERRULE_PID ]] && ! kill -0 "$FERRULE_PID" 2>/dev/null; then
        log "ferrule serve exited before the end; its last log lines:"
        tail -20 "$WORK/ferrule.log" >&2
    fi
    if [[ -n $FERRULE_PID ]]; then kill "$FERRULE_PID" 2>/dev/null && wait "$FERRULE_PID" 2>/dev/null; fi
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
MQTT=$(listener mqtt)
API=$(listener api)
[[ -n $MQTT && -n $API ]] || die "listeners.toml lacks mqtt or api: $(cat "$DATA/listeners.toml")"
log "ferrule: pid $FERRULE_PID, mqtt $MQTT, api $API"
export AWS_SHARED_CREDENTIALS_FILE=$DATA/credentials AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
iot() { aws iot --endpoint-url "http://$API" "$@"; }

# --- Helpers -------------------------------------------------------------------------------
# Sum of every sample of metric $1 (all label sets, or those given: name{label="value"}) in
# the broker's /metrics; 0 if absent.
metric() {
    curl -sf "http://$API/metrics" | awk -v m="$1" '
        index($0, m) == 1 && (substr($0, length(m) + 1, 1) == " " || substr($0, length(m) + 1, 1) == "{") { s += $NF }
        END { printf "%d\n", s }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$FERRULE_PID/stat"; }
# Nanoseconds the broker's threads spent waiting for a CPU while runnable, all threads.
cpu_wait_ns() { cat /proc/"$FERRULE_PID"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%d\n", s }'; }
QUEUE_FULL='ferrule_messages_dropped_total{reason="queue_full"}'

# Waits until the rules queue is empty (a run that overflowed it leaves up to 10,000 behind).
drain() {
    for _ in $(seq 300); do
        [[ $(metric ferrule_rules_queue_depth) == 0 ]] && return
        sleep 0.1
    done
    log "  the rules queue did not drain in 30 s"
}

# Keeps the largest ferrule_rules_queue_depth seen, every 0.1 s, in $WORK/depth.
start_sampler() {
    echo 0 >"$WORK/depth"
    (
        max=0
        while true; do
            d=$(metric ferrule_rules_queue_depth)
            if ((d > max)); then max=$d; echo "$max" >"$WORK/depth"; fi
            sleep 0.1
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
    SAMPLER_PID=
    cat "$WORK/depth"
}

# Publishers' topics, and the subscriber's filter without and with the rule.
TOPIC='bench/{run}p{n}/data'
BASE_FILTER='bench/+/data'
RULE_FILTER='out/#'

# Runs ferrule-bench pubsub once with the publishers on $TOPIC and the subscriber on FILTER
# ($1), plus ARGS; prints its JSON with what the broker did over the run added: broker_cpu_s,
# broker_wait_s (runnable, waiting for a CPU), rule_runs (ferrule_rule_matches_total),
# rule_dropped (ferrule_rules_dropped_total), rule_actions (republishes),
# queue_full_dropped (deliveries dropped on a full session queue), max_queue_depth (sampled).
run_once() {
    local filter=$1 before after w0 w1 m0 d0 a0 q0 depth json
    shift
    m0=$(metric ferrule_rule_matches_total)
    d0=$(metric ferrule_rules_dropped_total)
    a0=$(metric ferrule_rule_actions_total)
    q0=$(metric "$QUEUE_FULL")
    start_sampler
    w0=$(cpu_wait_ns)
    before=$(cpu_ticks)
    if ! json=$("$BENCH" pubsub --port "${MQTT##*:}" --publishers "$PUBLISHERS" --subscribers 1 \
        --qos 0 --payload 80 --payload-format json --topic "$TOPIC" --filter "$filter" \
        --timeout "$TIMEOUT" --json "$@" 2>"$WORK/bench.err"); then
        log "  ferrule-bench failed: $(tail -1 "$WORK/bench.err")"
        json='{"scenario":"failed"}'
    fi
    after=$(cpu_ticks)
    w1=$(cpu_wait_ns)
    depth=$(stop_sampler)
    drain
    # /proc/PID/stat counts in clock ticks of 1/100 s.
    json=$(jq -c --argjson cpu "$(((after - before) * 10))" \
        --argjson wait "$(((w1 - w0) / 1000000))" \
        --argjson queue_full "$(($(metric "$QUEUE_FULL") - q0))" \
        --argjson runs "$(($(metric ferrule_rule_matches_total) - m0))" \
        --argjson dropped "$(($(metric ferrule_rules_dropped_total) - d0))" \
        --argjson actions "$(($(metric ferrule_rule_actions_total) - a0))" \
        --argjson depth "$depth" \
        '. + {broker_cpu_s: ($cpu / 1000), broker_wait_s: ($wait / 1000), rule_runs: $runs,
              rule_dropped: $dropped, rule_actions: $actions, queue_full_dropped: $queue_full,
              max_queue_depth: $depth}' <<<"$json")
    [[ -n $RAW ]] && printf '%s\n' "$json" >>"$RAW"
    errors=$(jq -r '.errors // [] | .[]' <<<"$json")
    [[ -z $errors ]] || log "  errors: $errors"
    printf '%s\n' "$json"
}

# The rule, through the control plane; `ready` checks with a few messages that it is (or is
# not) in force, since the broker reloads rules a moment after the registry changes.
cat >"$WORK/rule.json" <<EOF
{"sql":"$SQL","actions":[{"republish":{"roleArn":"arn:aws:iam::123456789012:role/bench","topic":"out/\${topic(2)}","qos":0}}],"awsIotSqlVersion":"2016-03-23","ruleDisabled":false}
EOF
probe() {
    "$BENCH" pubsub --port "${MQTT##*:}" --publishers 1 --subscribers 1 --qos 0 \
        --messages 100 --payload 80 --payload-format json --topic "$TOPIC" --filter "$RULE_FILTER" \
        --timeout 5 --json 2>/dev/null | jq -r .received
}
create_rule() {
    iot create-topic-rule --rule-name "$RULE" --topic-rule-payload "file://$WORK/rule.json" >&2
    for _ in $(seq 50); do [[ $(probe) == 100 ]] && return; done
    die "the rule did not take effect"
}
delete_rule() {
    iot delete-topic-rule --rule-name "$RULE" >&2
    for _ in $(seq 50); do [[ $(probe) == 0 ]] && return; done
    die "the rule was still in force after it was deleted"
}

# Markdown cells from a run's JSON.
int() { jq -r "$1 | if . == null then \"-\" else (. | floor | tostring) end" <<<"$2"; }
lat() { echo "$(int .latency_p50_us "$1") / $(int .latency_p99_us "$1")"; }
lost() {
    jq -r 'if .lost == null then "-" elif .lost == 0 then "0"
        else "\(.lost) (\(.lost * 1000 / .expected | round / 10)%)" end' <<<"$1"
}
# Broker CPU time per published message, in microseconds.
cpu() {
    jq -r 'if .broker_cpu_s == null or (.sent // 0) == 0 then "-"
        else .broker_cpu_s * 1e6 / .sent | . * 10 | round / 10 end' <<<"$1"
}
# Rule runs per second, over the same span as the throughput.
runs_per_s() {
    jq -r 'if (.elapsed_s // 0) == 0 then "-" else .rule_runs / .elapsed_s | floor end' <<<"$1"
}
# Of the time the broker's threads were runnable, the share they waited for a CPU.
wait_pct() {
    jq -r 'if .broker_wait_s == null or .broker_cpu_s == null or (.broker_wait_s + .broker_cpu_s) == 0
        then "-" else .broker_wait_s * 100 / (.broker_wait_s + .broker_cpu_s) | round end' <<<"$1"
}
median() { printf '%s\n' "$@" | jq -s -c 'sort_by(.throughput_msgs // 0) | .[length / 2 | floor]'; }
row() {
    local name=$1 j=$2
    echo "| $name | $(int .sent "$j") | $(int .publish_rate "$j") | $(int .throughput_msgs "$j") | $(runs_per_s "$j") | $(lat "$j") | $(lost "$j") | $(int .rule_dropped "$j") | $(int .queue_full_dropped "$j") | $(int .max_queue_depth "$j") | $(cpu "$j") | $(wait_pct "$j") |"
}

# --- Baseline against one rule -------------------------------------------------------------
PER_PUBLISHER_RATE=$((RATE / PUBLISHERS))
RATED=(--rate "$PER_PUBLISHER_RATE" --messages "$((PER_PUBLISHER_RATE * RATE_SECONDS))")
FLAT=(--messages "$MESSAGES")
# label|rule in force|filter|arguments
SCENARIOS=(
    "no rule, flat out|base|$BASE_FILTER|${FLAT[*]}"
    "one rule, flat out|rule|$RULE_FILTER|${FLAT[*]}"
    "one rule, half fail WHERE, flat out|rule|$RULE_FILTER|${FLAT[*]} --cold-every 2"
    "no rule, $RATE msg/s|base|$BASE_FILTER|${RATED[*]}"
    "one rule, $RATE msg/s|rule|$RULE_FILTER|${RATED[*]}"
    "one rule, half fail WHERE, $RATE msg/s|rule|$RULE_FILTER|${RATED[*]} --cold-every 2"
)
# Load average, and the share of time some runnable task waited for a CPU over the last minute.
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg), CPU pressure $(sed -n 's/^some avg10=[^ ]* avg60=\([^ ]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo -) %"; }
LOAD_BEFORE=$(load)
declare -A RESULTS
for round in $(seq "$REPEAT"); do
    for want in base rule; do
        if [[ $want == rule ]]; then create_rule; fi
        for i in "${!SCENARIOS[@]}"; do
            IFS='|' read -r name kind filter args <<<"${SCENARIOS[$i]}"
            [[ $kind == "$want" ]] || continue
            log "round $round/$REPEAT: $name"
            # shellcheck disable=SC2086 # args is a list of flags
            RESULTS[$i]+="$(run_once "$filter" $args)"$'\n'
        done
        if [[ $want == rule ]]; then delete_rule; fi
    done
done
ROWS=()
for i in "${!SCENARIOS[@]}"; do
    name=${SCENARIOS[$i]%%|*}
    mapfile -t runs < <(printf '%s' "${RESULTS[$i]}")
    ROWS+=("$(row "$name" "$(median "${runs[@]}")")")
done

# --- The rule at rising rates --------------------------------------------------------------
# One run per rate, up to the first that loses a message, then BISECT runs halving the
# interval between the last rate without loss and the first with.
log "the rule at rising rates: $SWEEP"
create_rule
SWEEP_ROWS=()
GOOD=0
BAD=
# Runs the rule at $1 msg/s in all; true if nothing was lost.
sweep_run() {
    local rate=$1 per=$(($1 / PUBLISHERS)) j
    log "  $rate msg/s"
    j=$(run_once "$RULE_FILTER" --rate "$per" --messages "$((per * SWEEP_SECONDS))")
    SWEEP_ROWS+=("$(row "one rule, $rate msg/s offered" "$j")")
    [[ $(jq -r '.rule_dropped == 0 and .queue_full_dropped == 0 and .lost == 0' <<<"$j") == true ]]
}
for rate in $SWEEP; do
    if sweep_run "$rate"; then GOOD=$rate; else BAD=$rate; break; fi
done
if [[ -n $BAD ]]; then
    for _ in $(seq "$BISECT"); do
        mid=$(((GOOD + BAD) / 2000 * 1000))
        ((mid > GOOD && mid < BAD)) || break
        if sweep_run "$mid"; then GOOD=$mid; else BAD=$mid; fi
    done
fi

if [[ -n $PERF ]]; then
    # At the first rate that lost messages: where the broker's time goes when the rule is the
    # limit. DWARF call graphs, since the release build keeps no frame pointers.
    rate=${BAD:-$GOOD}
    per=$((rate / PUBLISHERS))
    log "profiling the broker during one more run of the rule at $rate msg/s..."
    perf record -F 499 --call-graph dwarf,16384 -p "$FERRULE_PID" -o "$WORK/perf.data" \
        2>"$WORK/perf.err" &
    perf_pid=$!
    sleep 0.5
    j=$(run_once "$RULE_FILTER" --rate "$per" --messages "$((per * SWEEP_SECONDS))")
    kill -INT "$perf_pid" && wait "$perf_pid" 2>/dev/null || true
    {
        echo "# perf record -F 499 --call-graph dwarf -p FERRULE during: one rule at $rate msg/s"
        echo "# $(row "profiled run, $rate msg/s offered" "$j")"
        echo "## by symbol, self time"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none 2>&1 |
            grep -v '^#' | grep '%' | head -60 || true
        echo "## by symbol, with callees"
        perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none 2>&1 |
            grep -v '^#' | grep '%' | head -300 || true
    } >"$PERF"
    log "profile written to $PERF"
fi
delete_rule
# The same load without the rule, for the broker's CPU per message at that rate.
if ((GOOD > 0)); then
    per=$((GOOD / PUBLISHERS))
    log "  no rule, $GOOD msg/s"
    j=$(run_once "$BASE_FILTER" --rate "$per" --messages "$((per * SWEEP_SECONDS))")
    SWEEP_ROWS+=("$(row "no rule, $GOOD msg/s offered (reference)" "$j")")
fi

# --- Report --------------------------------------------------------------------------------
HEADER="| Run | published | publish msg/s | delivered msg/s | rule runs/s | p50 / p99 µs | lost | rules queue drops | session queue drops | max rules queue | broker CPU µs/msg | broker CPU wait % |"
ALIGN="|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "Ferrule $("$FERRULE" --version | awk '{ print $2 }'); $(nproc) cores" \
    "($(lscpu | sed -n 's/^Model name: *//p' | head -1)); MQTT 3.1.1, QoS 0, $PUBLISHERS publishers" \
    "(one device each) -> 1 subscriber, JSON payloads of 80 bytes; before: $LOAD_BEFORE;" \
    "after: $(load)."
echo
echo "Baseline against one rule ($SQL, republish to out/\${topic(2)} at QoS 0), median of" \
    "$REPEAT run(s) per row, baseline and rule runs interleaved:"
echo
echo "$HEADER"
echo "$ALIGN"
printf '%s\n' "${ROWS[@]}"
echo
echo "The rule at rising offered rates (total over $PUBLISHERS publishers, ${SWEEP_SECONDS} s each," \
    "one run each), up to the first that loses messages, then halving the interval $BISECT time(s):" \
    "highest rate without loss ${GOOD} msg/s${BAD:+, lowest with loss $BAD msg/s}; last, the" \
    "highest rate without loss again without the rule."
echo
echo "$HEADER"
echo "$ALIGN"
printf '%s\n' "${SWEEP_ROWS[@]}"
echo
echo "delivered msg/s: messages the subscriber received (on the published topics without the rule," \
    "on out/# with it) per second from the first publish to the last receive. rule runs/s: rule" \
    "executions (ferrule_rule_matches_total) over the same span. Latency: publish → receive." \
    "lost: expected messages (those with temp > 20) that never arrived. rules queue drops:" \
    "ferrule_rules_dropped_total over the run. session queue drops: deliveries dropped on the" \
    "subscriber's full session queue (ferrule_messages_dropped_total{reason=\"queue_full\"})." \
    "max rules queue: ferrule_rules_queue_depth sampled every 0.1 s. CPU µs/msg: broker CPU time" \
    "(user + system, all threads) over the run per message published. CPU wait %: of the time" \
    "the broker's threads were runnable, the share they waited for a CPU (schedstat)."

warnings=$(grep -cE ' (WARN|ERROR) ' "$WORK/ferrule.log" || true)
log "ferrule log: $warnings WARN/ERROR lines"
grep -E ' (WARN|ERROR) ' "$WORK/ferrule.log" | head -5 >&2 || true
