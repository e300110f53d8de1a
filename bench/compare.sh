#!/usr/bin/env bash
# compare.sh loads greeter serve, a plain grpc-go greeter and the Python
# tutorial server, one after the other, with the same greeter bench settings,
# checks greeter bench against ghz on greeter serve, and rewrites the
# section of docs/performance.md between its "written by bench/compare.sh"
# markers, and docs/performance.png.
#
# Everything listens on 127.0.0.1 on ports the kernel picks; every server is
# killed when the script exits. Each server is loaded ROUNDS times (default
# 6), DURATION each time (default 2s), and its CPU time is read from /proc
# around each round; the whole run takes about a minute plus the first
# build.
#
# Needs: go, and /usr/bin/python3 with Debian's python3-grpcio and
# python3-grpc-tools. ghz is pinned as a tool in bench/go.mod.
#
# Settings (environment): DURATION=2s ROUNDS=6 CONCURRENCY=50 CONNECTIONS=1
# RATE=2000
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
TUTORIAL=$(cd "$BENCH/../testdata/python" && pwd) # the Python tutorial server and its proto
ROOT=$(cd "$BENCH/.." && pwd)
DURATION=${DURATION:-2s}
ROUNDS=${ROUNDS:-6}
CONCURRENCY=${CONCURRENCY:-50}
CONNECTIONS=${CONNECTIONS:-1}
RATE=${RATE:-2000}
PYTHON=${PYTHON:-/usr/bin/python3}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# loadgen CMD...: runs a load generator and waits for it. It runs in the
# background, with its pid in PIDS until it ends, so that a signal ends the
# script at once (bash runs a trap during `wait`, but after a foreground
# command only if that command died of the signal, and greeter bench and ghz
# stop cleanly on SIGINT) and the cleanup stops the load generator too.
loadgen() {
	"$@" &
	local pid=$!
	PIDS+=("$pid")
	wait "$pid"
	unset 'PIDS[-1]'
}

log() { echo "compare.sh: $*" >&2; }

log "building greeter, grpcgo-greeter, ghz and perfreport"
(cd "$ROOT" && go build -o "$WORK/greeter" ./cmd/greeter)
(cd "$BENCH" && go build -o "$WORK/grpcgo-greeter" ./grpcgo-greeter)
(cd "$BENCH" && go build -o "$WORK/ghz" github.com/bojand/ghz/cmd/ghz)
(cd "$BENCH" && go build -o "$WORK/perfreport" ./perfreport)

log "generating the Python stubs"
mkdir -p "$WORK/py" "$WORK/results"
"$PYTHON" -m grpc_tools.protoc -I"$TUTORIAL" --python_out="$WORK/py" --grpc_python_out="$WORK/py" "$TUTORIAL/helloworld.proto"

# start NAME CMD...: starts a server whose first line of output ends with
# the address it listens on, and sets ADDR[NAME] and PID[NAME].
declare -A ADDR PID
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
	PIDS+=("$!")
	for _ in $(seq 100); do # 10s at most
		# "... on 127.0.0.1:PORT" from the Go servers, "... listening on PORT"
		# from the Python tutorial server.
		if [[ -s "$WORK/$name.log" ]] && a=$(grep -m1 -oE '127\.0\.0\.1:[0-9]+|listening on [0-9]+$' "$WORK/$name.log"); then
			ADDR[$name]="127.0.0.1:${a##*[ :]}"
			log "$name listening on ${ADDR[$name]} (pid ${PID[$name]})"
			return 0
		fi
		if ! kill -0 "${PID[$name]}" 2>/dev/null; then
			log "$name exited:"
			cat "$WORK/$name.log" >&2
			return 1
		fi
		sleep 0.1
	done
	log "$name did not start listening in 10s"
	return 1
}

# --log-level warn: no line per successful call, as the other servers log
# none either (docs/observability.md#logs).
start greeter "$WORK/greeter" serve --addr 127.0.0.1:0 --log-level warn
start grpc-go "$WORK/grpcgo-greeter" --addr 127.0.0.1:0
start python env PYTHONPATH="$WORK/py" "$PYTHON" "$TUTORIAL/greeter_server.py" 127.0.0.1:0

SETTINGS=(--concurrency "$CONCURRENCY" --connections "$CONNECTIONS")
bench() { loadgen "$WORK/greeter" bench "${SETTINGS[@]}" --json "$@"; }
# cputicks PID: the process's user and system CPU time in 1/100 s (after
# the command name in parentheses, utime and stime are fields 12 and 13).
cputicks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

for name in greeter grpc-go python; do
	log "warming up $name for 1s"
	bench --addr "${ADDR[$name]}" --duration 1s >/dev/null
done
# Rounds interleave the servers, each round starting with the next one, so
# that neither a slow moment of the shared machine nor a place in the order
# falls on one server only; perfreport keeps each one's median round.
ORDER=(greeter grpc-go python)
for round in $(seq "$ROUNDS"); do
	for i in 0 1 2; do
		name=${ORDER[$(((round - 1 + i) % 3))]}
		log "round $round/$ROUNDS: loading $name for $DURATION"
		before=$(cputicks "${PID[$name]}")
		bench --addr "${ADDR[$name]}" --duration "$DURATION" >"$WORK/results/$name.$round.json"
		echo $(($(cputicks "${PID[$name]}") - before)) >"$WORK/results/$name.$round.cpu"
	done
done
for name in greeter grpc-go python; do
	awk '/VmHWM/ {print $2}' "/proc/${PID[$name]}/status" >"$WORK/results/$name.rss" || true
done

ghz() {
	loadgen "$WORK/ghz" --insecure --proto "$TUTORIAL/helloworld.proto" --call Greeter.SayHello \
		-d '{"name":"world"}' -c "$CONCURRENCY" --connections "$CONNECTIONS" -z "$DURATION" -O json "$@" "${ADDR[greeter]}"
}
log "greeter bench and ghz against greeter serve at --rps $RATE, then with no limit"
bench --addr "${ADDR[greeter]}" --duration "$DURATION" --rps "$RATE" >"$WORK/results/bench-rate.json"
ghz --rps "$RATE" >"$WORK/results/ghz-rate.json"
bench --addr "${ADDR[greeter]}" --duration "$DURATION" >"$WORK/results/bench-max.json"
ghz >"$WORK/results/ghz-max.json"

mkdir -p "$ROOT/docs"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
"$WORK/perfreport" --results "$WORK/results" \
	--md "$ROOT/docs/performance.md" --png "$ROOT/docs/performance.png" \
	--settings "${SETTINGS[*]} --duration $DURATION" --rounds "$ROUNDS" --rate "$RATE" \
	--machine "$(nproc) cores ($CPU), $(go version | cut -d' ' -f3), Python $("$PYTHON" -c 'import grpc, sys; print(sys.version.split()[0], "grpcio", grpc.__version__)')"
log "rewrote the marked section of docs/performance.md, and docs/performance.png"
