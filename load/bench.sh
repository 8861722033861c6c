#!/usr/bin/env bash
# Reruns the benchmarks of BENCHMARKS.md: subhub, the Node peer and the raw fan-out server, each
# pinned to core 0 with the generator on core 1, one server at a time. JSON and SVG results go
# to load/results/. `brokers` runs subhub on Redis pub/sub, Redis streams, RabbitMQ and a mock
# Kafka cluster, with plain broker subscribers beside its clients, to measure what the hub adds.
# `typed` runs one hub with load/typed.graphql: the built-in `events` API and a typed field
# with a two-level selection and a filter, on the same nested events, alternately.
# `reconnect` runs one hub whose memory broker keeps history: a broadcast alone, then the same
# broadcast while clients drop and resume from their cursors, alternately, three times each.
# Usage: load/bench.sh [subhub|node|raw|brokers|typed|reconnect ...] (default: all six).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
results=load/results
mkdir -p "$results"
cargo build --release -p subhub -p subhub-load
(cd load/peers/node-graphql-ws && npm ci --no-audit --no-fund >/dev/null)
servers=("${@:-subhub node raw brokers typed reconnect}")
read -r -a servers <<<"${servers[*]}"

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # name port -> prints the server's pid
  local name=$1 port=$2
  case "$name" in
    brokers) taskset -c 0 "$target/release/subhub" --config "$results/brokers.toml" --listen "127.0.0.1:$port" \
      >"$results/$name.log" 2>&1 & ;;
    reconnect) printf '[brokers.local]\nkind = "memory"\nhistory = 10000\n' >"$results/reconnect.toml"
      taskset -c 0 "$target/release/subhub" --config "$results/reconnect.toml" --listen "127.0.0.1:$port" \
      >"$results/$name.log" 2>&1 & ;;
    typed) printf 'schema = "load/typed.graphql"\n' >"$results/typed.toml"
      taskset -c 0 "$target/release/subhub" --config "$results/typed.toml" --listen "127.0.0.1:$port" \
      >"$results/$name.log" 2>&1 & ;;
    subhub) taskset -c 0 "$target/release/subhub" --listen "127.0.0.1:$port" >"$results/$name.log" 2>&1 & ;;
    node) taskset -c 0 node load/peers/node-graphql-ws/server.mjs "$port" >"$results/$name.log" 2>&1 & ;;
    raw) taskset -c 0 "$target/release/subhub-load" raw-server --listen "127.0.0.1:$port" >"$results/$name.log" 2>&1 & ;;
  esac
  local pid=$!
  for _ in $(seq 1 100); do answering "$port" && break; sleep 0.1; done
  echo "$pid"
}

run() { # server port pid name args...
  local server=$1 port=$2 pid=$3 name=$4
  shift 4
  echo "== $server: $name"
  taskset -c 1 "$target/release/subhub-load" run --url "ws://127.0.0.1:$port/graphql" --server-pid "$pid" \
    --label "$server" --out "$results/$server-$name.json" --svg "$results/$server-$name.svg" "$@"
}

# The hub on every broker: events go straight into the broker; the hub's clients (100, then
# 1,000) and 10 plain clients of the broker read them in the same run.
brokers() {
  local port=$1 kafka_pid bootstrap pid name via url
  taskset -c 1 "$target/release/subhub-load" kafka-mock --topics bench >"$results/kafka-mock.out" 2>&1 &
  kafka_pid=$!
  for _ in $(seq 1 100); do [ -s "$results/kafka-mock.out" ] && break; sleep 0.1; done
  bootstrap=$(head -1 "$results/kafka-mock.out")
  cat >"$results/brokers.toml" <<EOF
default_broker = "cache"
[brokers.cache]
kind = "redis"
url = "redis://127.0.0.1:6379"
[brokers.log]
kind = "redis"
mode = "streams"
url = "redis://127.0.0.1:6379"
[brokers.rabbit]
kind = "amqp"
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
exchange = "subhub"
[brokers.events]
kind = "kafka"
bootstrap_servers = "$bootstrap"
# The mock cluster answers a fetch only when fetch.wait.max.ms runs out (a real broker answers
# as soon as data arrives), so both the hub and the plain consumers wait 10 ms, not 500.
options = { "fetch.wait.max.ms" = "10" }
EOF
  pid=$(start brokers "$port")
  for broker in "cache redis redis://127.0.0.1:6379" "log redis-streams redis://127.0.0.1:6379" \
    "rabbit amqp amqp://guest:guest@127.0.0.1:5672/%2f" "events kafka $bootstrap"; do
    read -r name via url <<<"$broker"
    for clients in 100 1000; do
      run subhub "$port" "$pid" "broker-$via-$clients" --scenario broadcast -n "$clients" --plain 10 --rate 100 \
        --duration 20s --publish "$via" --broker-url "$url" --kafka-option fetch.wait.max.ms=10 \
        --query "subscription(\$topic: String!) { events(topic: \$topic, broker: \"$name\") { payload } }"
    done
  done
  kill "$pid" "$kafka_pid" 2>/dev/null || true
  wait "$pid" "$kafka_pid" 2>/dev/null || true
}

# Built-in and typed on one hub, alternately, three times each: the ratio of their CPU per
# delivery is what BENCHMARKS.md reports.
typed() {
  local port=$1 pid round
  pid=$(start typed "$port")
  for round in 1 2 3; do
    run subhub "$port" "$pid" "builtin-$round" --scenario broadcast -n 10000 --rate 20 --duration 20s \
      --nested-payload --query 'subscription($topic: String!) { events(topic: $topic) { payload } }'
    run subhub "$port" "$pid" "typed-$round" --scenario broadcast -n 10000 --rate 20 --duration 20s \
      --nested-payload --query 'subscription($topic: String!) { ticks(topic: $topic) { probe seq t detail { pad } } }'
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A broadcast to 10,000 clients alone, then with 50 drop-and-resume cycles a second (each a
# second away, about 150 clients reconnecting at any time), alternately: what replay costs the
# clients that stay is the difference in their p99.
reconnect() {
  local port=$1 pid round
  pid=$(start reconnect "$port")
  for round in 1 2 3; do
    run subhub "$port" "$pid" "steady-$round" --scenario broadcast -n 10000 --rate 15 --duration 20s
    run subhub "$port" "$pid" "reconnect-$round" --scenario reconnect -n 10000 --rate 15 --churn-rate 50 --duration 20s
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

port=4400
for server in "${servers[@]}"; do
  port=$((port + 1))
  if [ "$server" = brokers ] || [ "$server" = typed ] || [ "$server" = reconnect ]; then
    "$server" "$port"
    continue
  fi
  pid=$(start "$server" "$port")
  case "$server" in
    subhub | raw)
      run "$server" "$port" "$pid" broadcast-2 --scenario broadcast -n 10000 --rate 2 --duration 20s
      run "$server" "$port" "$pid" broadcast-20 --scenario broadcast -n 10000 --rate 20 --duration 20s
      run "$server" "$port" "$pid" broadcast-30 --scenario broadcast -n 10000 --rate 30 --duration 20s
      run "$server" "$port" "$pid" burst --scenario burst -n 10000 --bursts 30
      ;;
    node)
      run "$server" "$port" "$pid" broadcast-2 --scenario broadcast -n 10000 --rate 2 --duration 20s
      ;;
  esac
  if [ "$server" = subhub ]; then
    run subhub "$port" "$pid" slow-consumers --scenario slow-consumers -n 10000 --rate 15 --duration 20s
    run subhub "$port" "$pid" healthy-15 --scenario broadcast -n 10000 --rate 15 --duration 20s
    run subhub "$port" "$pid" churn --scenario churn -n 10000 --rate 15 --churn-rate 500 --duration 20s
    run subhub "$port" "$pid" partitioned --scenario partitioned -n 10000 --rate 2000 --duration 20s
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Idle runs get a fresh process, so memory per connection is measured from a clean start.
  # Their window is four keepalive periods (12 s in subhub and in graphql-ws's server), so
  # every connection is pinged the same number of times in it.
  port=$((port + 1))
  pid=$(start "$server" "$port")
  if [ "$server" = subhub ]; then
    run "$server" "$port" "$pid" idle-19000 --scenario idle -n 19000 --duration 48s --ramp 4000
  else
    run "$server" "$port" "$pid" idle-10000 --scenario idle -n 10000 --duration 48s --ramp 4000
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
