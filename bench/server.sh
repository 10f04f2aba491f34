#!/usr/bin/env bash
# The server's load benchmark (docs/benchmarks.md, "Server"):
#   1. GET /api/runs (a page of 50 of 100k runs) with wrk: requests/s;
#   2. 1,000 SSE subscribers on one run, every event to each: count and time.
# Prints one JSON line per figure. Needs `wrk` (Debian: apt-get install -y wrk).
# Knobs: RUNS (100000), CONNECTIONS (64), THREADS (2), DURATION (10s), SUBSCRIBERS (1000),
# EVENTS (100).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-100000}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
EVENTS=${EVENTS:-100}
PORT=${PORT:-7421}

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found: apt-get install -y wrk" >&2
    exit 1
fi
# 1,000 subscribers hold 2,000 sockets in one process.
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

cargo build --release -p miyabi --features server --example server_bench >&2
target=${CARGO_TARGET_DIR:-target}
bin="$target/release/examples/server_bench"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" seed "$work/bench.db" "$RUNS" >&2
token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
MIYABI_TOKENS="bench=$token" "$bin" serve "$work/bench.db" "127.0.0.1:$PORT" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 100); do
    if grep -q "listening on" "$work/serve.log"; then break; fi
    sleep 0.1
done
url="http://127.0.0.1:$PORT/api/runs?limit=50"
# Sanity: one page of 50 with a cursor.
curl -sf -H "Authorization: Bearer $token" "$url" | grep -q next_cursor
# Warm up, then measure.
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $token" "$url" >/dev/null
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $token" "$url" | tee "$work/wrk.txt" >&2
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
p99=$(awk '/Latency/ {print $2}' "$work/wrk.txt")
echo "{\"bench\": \"server.runs_page\", \"value\": $rps, \"unit\": \"req/s\"}"
echo "wrk latency avg $p99 ($CONNECTIONS connections, $THREADS threads, $RUNS runs)" >&2
# A deep page (cursor from the middle of the table) costs the same: keyset paging.
mid=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/runs?limit=500" \
    | grep -o '"next_cursor":"[^"]*"' | cut -d'"' -f4)
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $token" \
    "$url&cursor=$mid&workflow=report" > "$work/wrk2.txt"
rps2=$(awk '/Requests\/sec/ {print $2}' "$work/wrk2.txt")
echo "{\"bench\": \"server.runs_page_filtered_cursor\", \"value\": $rps2, \"unit\": \"req/s\"}"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""

"$bin" sse "$SUBSCRIBERS" "$EVENTS"
