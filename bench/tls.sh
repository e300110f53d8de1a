#!/usr/bin/env bash
# tls.sh loads three servers over TLS with the same certificate, in
# interleaved rounds, and prints each one's median QPS and the medians of
# the rounds' ratios (servers next to each other in a round ran back to back):
#   greeter-tls   greeter serve --tls-cert/--tls-key
#   grpc-go-tls   bench/grpcgo-greeter --tls-cert/--tls-key (credentials.NewTLS)
#   greeter-full  greeter serve with mutual TLS, --token-file and --authz-policy,
#                 loaded by a client with a certificate and a token
# The test CA and certificates are made with openssl in a temp dir and
# removed at the end; everything listens on 127.0.0.1.
#
# Settings (environment): DURATION=2s ROUNDS=6 CONCURRENCY=50 CONNECTIONS=1
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
DURATION=${DURATION:-2s}
ROUNDS=${ROUNDS:-6}
CONCURRENCY=${CONCURRENCY:-50}
CONNECTIONS=${CONNECTIONS:-1}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
log() { echo "tls.sh: $*" >&2; }

log "building greeter and grpcgo-greeter"
(cd "$ROOT" && go build -o "$WORK/greeter" ./cmd/greeter)
(cd "$BENCH" && go build -o "$WORK/grpcgo-greeter" ./grpcgo-greeter)

log "making a test CA, a server certificate and a client certificate"
P=$WORK/pki
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj "/CN=bench CA" -keyout "$P/ca-key.pem" -out "$P/ca.pem" 2>/dev/null
issue() { # issue NAME SUBJECT SAN
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
		-keyout "$P/$1-key.pem" -out "$P/$1.csr" 2>/dev/null
	openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.pem" -CAkey "$P/ca-key.pem" -CAcreateserial \
		-days 1 -extfile <(printf 'subjectAltName=%s\n' "$3") -out "$P/$1.pem" 2>/dev/null
}
issue server /CN=localhost "DNS:localhost,IP:127.0.0.1"
issue admin /CN=admin "URI:spiffe://greeter.test/admin"
echo "admin bench-token" >"$P/tokens"
cat >"$P/policy.json" <<'POLICY'
{"name": "bench", "allow_rules": [{"name": "admin", "source": {"principals": ["spiffe://greeter.test/admin"]}, "request": {"paths": ["/Greeter/*"], "headers": [{"key": "x-greeter-identity", "values": ["admin"]}]}}]}
POLICY

declare -A ADDR
start() { # start NAME CMD...
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 100); do
		if a=$(grep -m1 -oE '127\.0\.0\.1:[0-9]+' "$WORK/$name.log"); then
			ADDR[$name]=$a
			return 0
		fi
		sleep 0.1
	done
	log "$name did not start:"
	cat "$WORK/$name.log" >&2
	return 1
}
TLS=(--tls-cert "$P/server.pem" --tls-key "$P/server-key.pem")
# --log-level warn: no line per successful call, as plain grpc-go logs none
# (compare.sh does the same).
start greeter-tls "$WORK/greeter" serve --addr 127.0.0.1:0 --log-level warn "${TLS[@]}"
start grpc-go-tls "$WORK/grpcgo-greeter" --addr 127.0.0.1:0 "${TLS[@]}"
start greeter-full "$WORK/greeter" serve --addr 127.0.0.1:0 --log-level warn "${TLS[@]}" \
	--tls-client-ca "$P/ca.pem" --token-file "$P/tokens" --authz-policy "$P/policy.json"

declare -A CLIENT
CLIENT[greeter-tls]="--tls-ca $P/ca.pem"
CLIENT[grpc-go-tls]="--tls-ca $P/ca.pem"
CLIENT[greeter-full]="--tls-ca $P/ca.pem --tls-cert $P/admin.pem --tls-key $P/admin-key.pem --token bench-token"
load() { # load NAME DURATION
	# shellcheck disable=SC2086
	"$WORK/greeter" bench --addr "${ADDR[$1]}" --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" \
		--duration "$2" --json ${CLIENT[$1]}
}
qps() { grep -oE '"qps": *[0-9.]+' | grep -oE '[0-9.]+$'; }

NAMES=(greeter-tls grpc-go-tls greeter-full)
for name in "${NAMES[@]}"; do
	log "warming up $name for 1s"
	load "$name" 1s >/dev/null
done
for round in $(seq "$ROUNDS"); do
	for i in 0 1 2; do
		name=${NAMES[$(((round - 1 + i) % 3))]}
		q=$(load "$name" "$DURATION" | qps)
		log "round $round/$ROUNDS: $name $q QPS"
		echo "$q" >>"$WORK/$name.qps"
	done
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# ratios A B: A's QPS over B's, round by round (the two ran back to back).
ratios() { paste "$WORK/$1.qps" "$WORK/$2.qps" | awk '{print $1 / $2}'; }
wins() { ratios "$1" "$2" | awk '$1 > 1 {n++} END {print n + 0}'; }
printf 'over %s rounds of %s (--concurrency %s --connections %s), medians:\n' "$ROUNDS" "$DURATION" "$CONCURRENCY" "$CONNECTIONS"
for name in grpc-go-tls greeter-tls greeter-full; do
	printf '  %-13s %8.0f QPS\n' "$name" "$(median <"$WORK/$name.qps")"
done
printf '  greeter-tls / grpc-go-tls:   %.2fx (median of the rounds'"'"' ratios; greeter ahead in %s of %s rounds)\n' \
	"$(ratios greeter-tls grpc-go-tls | median)" "$(wins greeter-tls grpc-go-tls)" "$ROUNDS"
printf '  greeter-full / greeter-tls:  %.2fx (mTLS + token + authz policy)\n' "$(ratios greeter-full greeter-tls | median)"
