#!/usr/bin/env bash
# A hub under attack from one hostile client: 100 well-behaved subscribers are measured on a
# broadcast while one attack of `subhub-load attack` runs beside them, and their p99 is compared
# with an undisturbed run on the same broker, in the same session. The hub is pinned to core 0;
# the generator and the attacker share core 1, the attacker at the lowest priority so it does
# not slow the measuring. During each attack, a client from yet another address (127.0.0.3)
# connects ten times (`GET /healthz`): the worst status and time show whether the attack
# locks new clients out. The MQTT attack runs against a second hub whose default broker is
# Mosquitto on 1883, measuring MQTT subscribers. Results go to load/results/attack/; the table
# is printed at the end.
# Usage: load/attack.sh [ATTACK ...]   (default: every attack)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
results=load/results/attack
mkdir -p "$results"
cargo build --release -p subhub -p subhub-load
attacks=("${@:-oversized aliases subscribe-loop connect-burst topics amqp-pattern kafka-lookups idle-sockets trickled-bodies status-streams mqtt-oversized}")
read -r -a attacks <<<"${attacks[*]}"
port=4400
mqtt_port=4401
rate=100
window=20s
amqp=amqp://guest:guest@127.0.0.1:5672/%2f

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

taskset -c 1 "$target/release/subhub-load" kafka-mock --topics bench >"$results/kafka-mock.out" 2>&1 &
kafka_pid=$!
for _ in $(seq 1 100); do [ -s "$results/kafka-mock.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$results/kafka-mock.out")
cat >"$results/hub.toml" <<TOML
default_broker = "local"
[brokers.local]
kind = "memory"
[brokers.rabbit]
kind = "amqp"
url = "$amqp"
exchange = "subhub-attack"
[brokers.events]
kind = "kafka"
bootstrap_servers = "$bootstrap"
options = { "fetch.wait.max.ms" = "10" }
[limits]
# Low enough that the bursts and the topic flood reach them.
max_connections = 400
max_sources = 2000
TOML
cat >"$results/mqtt-hub.toml" <<TOML
default_broker = "devices"
[brokers.devices]
kind = "mqtt"
url = "mqtt://127.0.0.1:1883"
TOML
taskset -c 0 "$target/release/subhub" --config "$results/hub.toml" --listen "127.0.0.1:$port" >"$results/hub.log" 2>&1 &
hub_pid=$!
taskset -c 0 "$target/release/subhub" --config "$results/mqtt-hub.toml" --listen "127.0.0.1:$mqtt_port" \
  >"$results/mqtt-hub.log" 2>&1 &
mqtt_hub_pid=$!
trap 'kill $hub_pid $mqtt_hub_pid $kafka_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do answering "$port" && answering "$mqtt_port" && break; sleep 0.1; done

broker_of() { # attack -> the broker its measured clients use
  case "$1" in
    amqp-pattern) echo rabbit ;; kafka-lookups) echo events ;; mqtt-oversized) echo devices ;; *) echo local ;;
  esac
}

probe() { # port -> the worst of ten connects from 127.0.0.3 during an attack: "STATUS SECONDS"
  local answers=()
  for _ in $(seq 1 10); do
    answers+=("$(curl -s -o /dev/null --interface 127.0.0.3 --max-time 10 -w '%{http_code} %{time_total}' \
      "http://127.0.0.1:$1/healthz" || true)")
    sleep 0.5
  done
  # A refusal or a timeout if there was one, else the slowest.
  printf '%s\n' "${answers[@]}" | awk '$1 != 200 { bad = $0 } $2 >= max { max = $2; slow = $0 } END { print (bad != "" ? bad : slow) }'
}

measure() { # name broker [attack] -> the p99 in ms of 100 subscribers on the broker
  local name=$1 broker=$2 attack=${3:-} publish=() run attacker subscriptions port=$port hub_pid=$hub_pid
  if [ "$broker" = devices ]; then port=$mqtt_port hub_pid=$mqtt_hub_pid; fi
  case "$broker" in
    rabbit) publish=(--publish amqp --broker-url "$amqp" --exchange subhub-attack) ;;
    # The MQTT hub's default broker: POST /publish reaches Mosquitto.
    devices) publish=(--publish http) ;;
    events) publish=(--publish kafka --broker-url "$bootstrap" --kafka-option fetch.wait.max.ms=10) ;;
    *) publish=(--publish http) ;;
  esac
  taskset -c 1 "$target/release/subhub-load" run --url "ws://127.0.0.1:$port/graphql" --server-pid "$hub_pid" \
    --label "$name" --scenario broadcast -n 100 --rate "$rate" --duration "$window" "${publish[@]}" \
    --query "subscription(\$topic: String!) { events(topic: \$topic, broker: \"$broker\") { payload } }" \
    --out "$results/$name.json" >"$results/$name.txt" &
  run=$!
  if [ -n "$attack" ]; then
    # The measured clients are in before the attack starts (it may take every free place),
    # and the attack is under way before their window opens.
    for _ in $(seq 1 300); do
      subscriptions=$(curl -s "127.0.0.1:$port/metrics" | awk '/^subhub_subscriptions / { print $2 }')
      [ "${subscriptions:-0}" -ge 100 ] && break
      sleep 0.1
    done
    nice -n 19 taskset -c 1 "$target/release/subhub-load" attack --url "ws://127.0.0.1:$port/graphql" \
      --kind "$attack" --broker "$broker" --duration 40s >"$results/attacker-$attack.txt" 2>&1 &
    attacker=$!
    sleep 5
    probe "$port" >"$results/probe-$attack.txt"
  fi
  wait "$run"
  if [ -n "$attack" ]; then
    # The attack outlasts the measurement, then prints what the hub answered it.
    wait "$attacker" || true
    echo "   $(tail -1 "$results/attacker-$attack.txt"); a new client during it: $(cat "$results/probe-$attack.txt")" >&2
  fi
  jq -r '.windows[0].latency.p99_us / 1000' "$results/$name.json"
}

declare -A baseline
rows=()
for attack in "${attacks[@]}"; do
  broker=$(broker_of "$attack")
  if [ -z "${baseline[$broker]:-}" ]; then
    baseline[$broker]=$(measure "undisturbed-$broker" "$broker")
    echo "== undisturbed on $broker: p99 ${baseline[$broker]} ms"
  fi
  p99=$(measure "attacked-$attack" "$broker" "$attack")
  lost=$(jq -r '.windows[0].tally.lost' "$results/attacked-$attack.json")
  ratio=$(awk -v a="$p99" -v b="${baseline[$broker]}" 'BEGIN { printf "%.2f", a / b }')
  echo "== $attack on $broker: p99 $p99 ms (undisturbed ${baseline[$broker]} ms, ${ratio}x), lost $lost"
  probe=$(cat "$results/probe-$attack.txt")
  rows+=("| $attack | $broker | ${baseline[$broker]} | $p99 | ${ratio}x | $lost | ${probe%% *} in ${probe#* } s |")
done
echo
echo "| attack | broker | undisturbed p99 ms | attacked p99 ms | ratio | lost | new client (worst of 10) |"
echo "|---|---|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
