#!/usr/bin/env bash
# Reruns the benchmarks of BENCHMARKS.md: subhub, the Node peer and the raw fan-out server, each
# pinned to core 0 with the generator on core 1, one server at a time. JSON and SVG results go
# to load/results/. Usage: load/bench.sh [subhub|node|raw ...] (default: all three).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
results=load/results
mkdir -p "$results"
cargo build --release -p subhub -p subhub-load
(cd load/peers/node-graphql-ws && npm ci --no-audit --no-fund >/dev/null)
servers=("${@:-subhub node raw}")
read -r -a servers <<<"${servers[*]}"

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # name port -> prints the server's pid
  local name=$1 port=$2
  case "$name" in
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

port=4400
for server in "${servers[@]}"; do
  port=$((port + 1))
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
  port=$((port + 1))
  pid=$(start "$server" "$port")
  if [ "$server" = subhub ]; then
    run "$server" "$port" "$pid" idle-19000 --scenario idle -n 19000 --duration 20s --ramp 4000
  else
    run "$server" "$port" "$pid" idle-10000 --scenario idle -n 10000 --duration 20s --ramp 4000
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
