#!/usr/bin/env bash
# Side-by-side ingest benchmark: causeway vs Rotel (the reference Rust OTLP
# collector), same load generator, same machine, one after the other.
#
#   benches/compare_rotel.sh [SECONDS] [SPANS_PER_SECOND]
#
# Prints, per transport, accepted spans/s and spans per server CPU-second
# (the fair figure on a shared machine) and the ratio causeway/Rotel, first
# at saturation (as fast as each server answers), then at a fixed rate
# (default 100,000 spans/s) that both sustain, so that both do the same work
# and neither is measured while it builds up a queue. Then
# the same for forwarding (a sidecar tee): causeway with `exporters.otlp`
# against Rotel with its OTLP exporter, both sending OTLP/gRPC to a third
# process, a blackhole Rotel; for causeway it also prints the forwarded and
# dropped span counters once its disk queue has drained. Last, it checks
# delivery through Rotel used as a forwarding collector in front of
# causeway: every span acknowledged to the client must reach causeway.
#
# Rotel 0.0.1a10 ships in the PyPI package `rotel` as a manylinux_2_34
# binary. On an older glibc (Debian 12 has 2.36) it runs under the loader of
# Debian 13's libc6, downloaded and unpacked next to it, never installed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-15}"
RATE="${2:-100000}"
WORK="${ROTEL_DIR:-$HOME/.cache/causeway/rotel}"
mkdir -p "$WORK"

# --workspace: the same feature set as `cargo test --workspace`, so nothing
# is rebuilt for a different one.
cargo build --release --locked --workspace --bins >&2
TARGET="${CARGO_TARGET_DIR:-target}"
CW="$TARGET/release/causeway"
LG="$TARGET/release/loadgen"

if [ ! -x "$WORK/rotel/rotel-agent" ]; then
  (cd "$WORK" && python3 -m pip download --no-deps --quiet "rotel==0.0.1a10" -d . && python3 -m zipfile -e rotel-0.0.1a10-*.whl .)
  chmod +x "$WORK/rotel/rotel-agent"
fi
ROTEL=("$WORK/rotel/rotel-agent")
if ! "$WORK/rotel/rotel-agent" --help >/dev/null 2>&1; then
  if [ ! -e "$WORK/glibc/usr/lib/x86_64-linux-gnu/libc.so.6" ]; then
    curl -sSfL -o "$WORK/libc6.deb" http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.41-12_amd64.deb
    dpkg-deb -x "$WORK/libc6.deb" "$WORK/glibc"
  fi
  G="$WORK/glibc/usr/lib/x86_64-linux-gnu"
  ROTEL=("$G/ld-linux-x86-64.so.2" --library-path "$G" "$WORK/rotel/rotel-agent")
fi

DATA=$(mktemp -d)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DATA"; }
PIDS=()
trap cleanup EXIT

RUNS=0
start_causeway() { # [serve args...]
  # A fresh data directory per start: causeway restores what it stored, and
  # each run must count only its own spans.
  RUNS=$((RUNS + 1))
  RUST_LOG=warn "$CW" serve --grpc-addr 127.0.0.1:14317 --http-addr 127.0.0.1:14318 \
    --api-addr 127.0.0.1:14319 --data-dir "$DATA/causeway-$RUNS" "$@" >"$DATA/causeway.log" 2>&1 &
  CW_PID=$!; PIDS+=("$CW_PID")
  for _ in $(seq 100); do curl -sf 127.0.0.1:14319/readyz >/dev/null && return; sleep 0.1; done
  echo "causeway did not start" >&2; cat "$DATA/causeway.log" >&2; exit 1
}
start_rotel() { # exporter args...
  "${ROTEL[@]}" start --otlp-grpc-endpoint 127.0.0.1:24317 --otlp-http-endpoint 127.0.0.1:24318 \
    --otlp-grpc-max-recv-msg-size-mib 64 --log-level warn --pid-file "$DATA/rotel.pid" \
    --log-file "$DATA/rotel.log" "$@" >"$DATA/rotel.out" 2>&1 &
  RO_PID=$!; PIDS+=("$RO_PID")
  sleep 1
}

run() { # label pid loadgen-args...
  local label=$1 pid=$2; shift 2
  "$LG" --label "$label" --pid "$pid" --duration "${SECS}s" "$@"
}

# Whether the pipeline kept up: a query is answered only after everything
# acknowledged before it was processed, so the time the first one takes
# after the load stops is the backlog left, and the CPU it costs is work
# the run's spans/CPU-s figure did not include.
cpu_of() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
backlog() { # pid
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(cpu_of "$1")
  curl -s 127.0.0.1:14319/api/v1/services >/dev/null
  t1=$(date +%s.%N); c1=$(cpu_of "$1")
  python3 -c "print(f'  backlog: processed {$t1 - $t0:.2f} s after the load stopped, {$c1 - $c0:.2f} CPU-s more')"
}

declare -A RESULT
# One round of the three transports, each on causeway then on Rotel.
# Arguments: a label for the ratio line, then extra loadgen arguments
# (none: saturate; `--rate N`: a fixed rate).
ingest_round() {
  local what=$1; shift
  local mode args cw ro line c r
  for mode in grpc http grpc+gzip; do
    case $mode in
      grpc) args=(--grpc); cw=127.0.0.1:14317; ro=127.0.0.1:24317 ;;
      http) args=(--http); cw=http://127.0.0.1:14318; ro=http://127.0.0.1:24318 ;;
      grpc+gzip) args=(--gzip --grpc); cw=127.0.0.1:14317; ro=127.0.0.1:24317 ;;
    esac
    start_causeway
    line=$(run causeway "$CW_PID" "$@" "${args[@]}" "$cw" 2>&1 | tail -1 | sed "s/^/ /")
    echo "$line"; c=$(echo "$line" | grep -oE '[0-9]+ spans/CPU-s' | cut -d' ' -f1)
    backlog "$CW_PID"
    kill "$CW_PID"; wait "$CW_PID" 2>/dev/null || true
    start_rotel --exporter blackhole
    line=$(run rotel "$RO_PID" "$@" "${args[@]}" "$ro" 2>&1 | tail -1 | sed "s/^/ /")
    echo "$line"; r=$(echo "$line" | grep -oE '[0-9]+ spans/CPU-s' | cut -d' ' -f1)
    kill "$RO_PID"; wait "$RO_PID" 2>/dev/null || true
    python3 -c "print(f'  ratio {\"$mode\":<9} $what causeway/rotel = {$c/$r:.2f}x spans per CPU-second')"
  done
}

echo "== ingest: spans per server CPU-second (higher is better), ${SECS}s per run"
ingest_round "at saturation"
echo "== ingest at a fixed rate of $RATE spans/s: spans per server CPU-second (higher is better), ${SECS}s per run"
ingest_round "at $RATE spans/s" --rate "$RATE"

echo "== forwarding OTLP/gRPC to a downstream collector: spans per CPU-second of the forwarder, ${SECS}s per run"
# The downstream: a blackhole Rotel on its own ports, the same for both.
"${ROTEL[@]}" start --otlp-grpc-endpoint 127.0.0.1:34317 --otlp-http-endpoint 127.0.0.1:34318 \
  --otlp-grpc-max-recv-msg-size-mib 64 --log-level warn --pid-file "$DATA/sink.pid" \
  --log-file "$DATA/sink.log" --exporter blackhole >"$DATA/sink.out" 2>&1 &
PIDS+=("$!")
sleep 1
cat >"$DATA/forward.yaml" <<'YAML'
exporters:
  otlp:
    - name: downstream
      endpoint: http://127.0.0.1:34317
      protocol: grpc
YAML
# causeway forwarding with CONFIG: run the load, wait until the disk queue
# has drained (its metric), then print what was sent, dropped and refused.
# Sets FWD to its spans per CPU-second.
forward_round() { # label config
  local line pending
  start_causeway --config "$2"
  line=$(run "$1" "$CW_PID" --grpc 127.0.0.1:14317 2>&1 | tail -1 | sed "s/^/ /")
  echo "$line"; FWD=$(echo "$line" | grep -oE '[0-9]+ spans/CPU-s' | cut -d' ' -f1)
  for _ in $(seq 300); do
    pending=$(curl -s 127.0.0.1:14319/metrics | awk '/^causeway_forward_queue_bytes\{/ {s += $2} END {print s + 0}')
    [ "$pending" = "0" ] && break; sleep 0.2
  done
  curl -s 127.0.0.1:14319/metrics | grep -E '^causeway_forward_(sent|dropped)_spans_total|forward_queue_full' | sed 's/^/  /'
  kill "$CW_PID"; wait "$CW_PID" 2>/dev/null || true
}
forward_round causeway-forwarding "$DATA/forward.yaml"
RESULT[cw_fwd]=$FWD
# The same with `when_full: refuse`: causeway pushes back as Rotel does,
# accepting only what its queue has room for.
sed 's/protocol: grpc/protocol: grpc\n      queue: {when_full: refuse}/' "$DATA/forward.yaml" >"$DATA/forward-refuse.yaml"
forward_round causeway-forwarding-refuse "$DATA/forward-refuse.yaml"
RESULT[cw_fwd_refuse]=$FWD
start_rotel --exporter otlp --otlp-exporter-endpoint http://127.0.0.1:34317
line=$(run rotel-forwarding "$RO_PID" --grpc 127.0.0.1:24317 2>&1 | tail -1 | sed "s/^/ /")
echo "$line"; RESULT[ro_fwd]=$(echo "$line" | grep -oE '[0-9]+ spans/CPU-s' | cut -d' ' -f1)
kill "$RO_PID"; wait "$RO_PID" 2>/dev/null || true
python3 -c "print(f'  ratio forwarding causeway/rotel = {${RESULT[cw_fwd]}/${RESULT[ro_fwd]}:.2f}x spans per CPU-second (causeway also analyses and stores every span)')"
python3 -c "print(f'  ratio forwarding with when_full: refuse causeway/rotel = {${RESULT[cw_fwd_refuse]}/${RESULT[ro_fwd]}:.2f}x spans per CPU-second')"

echo "== delivery through Rotel forwarding OTLP/gRPC to causeway"
start_causeway
start_rotel --exporter otlp --otlp-exporter-endpoint http://127.0.0.1:14317
sent=$("$LG" --label via-rotel --requests 200 --connections 2 --inflight 2 --grpc 127.0.0.1:24317 | grep -oE 'accepted=[0-9]+' | cut -d= -f2)
got=0
for _ in $(seq 50); do
  got=$(curl -s 127.0.0.1:14319/api/v1/services | python3 -c 'import json,sys; print(sum(s["spans"] for s in json.load(sys.stdin)["services"]))')
  [ "$got" -ge "$sent" ] && break; sleep 0.2
done
echo " acknowledged to the client by Rotel: $sent spans; counted by causeway: $got spans"
[ "$got" -eq "$sent" ] && echo " delivery: exact" || { echo " delivery: MISMATCH"; exit 1; }
