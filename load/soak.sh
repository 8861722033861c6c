#!/usr/bin/env bash
# The soak of BENCHMARKS.md ("Soak"): a hub on Redis (pub/sub and streams), RabbitMQ, a mock
# Kafka cluster and an upstream hub, churned by `subhub-load soak` for DURATION (default 30m)
# after WARMUP (default 60s), while this script restarts Redis every 5 minutes, closes the hub's
# RabbitMQ connections every 4 and restarts the upstream every 7. Results: load/results/soak.*
# (CSV of samples, SVG chart, JSON summary) and load/results/soak-faults.log. Not run in CI.
# Usage: DURATION=30m load/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
results=load/results
duration="${DURATION:-30m}"
warmup="${WARMUP:-60s}"
hub_port=4590
upstream_port=4591
exchange=subhub.soak
mkdir -p "$results"
cargo build --release -p subhub -p subhub-load

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 200); do answering "$1" && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }
log() { printf '%s %s\n' "$(date +%s)" "$*" | tee -a "$results/soak-faults.log"; }

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  # The upstream may have been restarted by the faults loop, whose pid this shell never saw.
  pkill -f "subhub --listen 127.0.0.1:$upstream_port" 2>/dev/null || true
  answering 6379 || redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes >/dev/null
}
trap cleanup EXIT
: >"$results/soak-faults.log"

kafka_topics=soak-steady$(for n in $(seq 0 9); do printf ',soak-k%s' "$n"; done)
"$target/release/subhub-load" kafka-mock --topics "$kafka_topics" >"$results/soak-kafka.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$results/soak-kafka.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$results/soak-kafka.out")

start_upstream() {
  "$target/release/subhub" --listen "127.0.0.1:$upstream_port" >>"$results/soak-upstream.log" 2>&1 &
  upstream_pid=$!
  wait_port "$upstream_port"
}
start_upstream

cat >"$results/soak-hub.toml" <<TOML
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
exchange = "$exchange"
[brokers.events]
kind = "kafka"
bootstrap_servers = "$bootstrap"
options = { "fetch.wait.max.ms" = "10" }
[upstreams.up]
url = "ws://127.0.0.1:$upstream_port/graphql"
sdl = "tests/fixtures/builtin.graphql"
TOML
"$target/release/subhub" --config "$results/soak-hub.toml" --listen "127.0.0.1:$hub_port" >"$results/soak-hub.log" 2>&1 &
hub_pid=$!
pids+=("$hub_pid")
wait_port "$hub_port"

faults() {
  local started=$SECONDS
  sleep "$(( ${warmup%s} + 30 ))"
  while true; do
    local t=$(( SECONDS - started ))
    if (( t % 300 < 10 )); then
      log "redis restart"
      redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true
      sleep 3
      redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes >/dev/null
    fi
    if (( t % 240 < 10 )); then
      log "rabbitmq connections closed"
      rabbitmqctl close_all_connections "soak: connection killed" >/dev/null 2>&1 || true
    fi
    if (( t % 420 < 10 )); then
      log "upstream restart"
      kill "$upstream_pid" 2>/dev/null || true
      wait "$upstream_pid" 2>/dev/null || true
      sleep 2
      start_upstream
    fi
    sleep 10
  done
}
faults &
faults_pid=$!
pids+=("$faults_pid")

"$target/release/subhub-load" soak --url "ws://127.0.0.1:$hub_port/graphql" --server-pid "$hub_pid" \
  --duration "$duration" --warmup "$warmup" --upstream-field up_events --amqp-exchange "$exchange" \
  --out "$results/soak" | tee "$results/soak-summary.out"
kill "$faults_pid" 2>/dev/null || true
kill "$upstream_pid" 2>/dev/null || true
