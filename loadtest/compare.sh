#!/usr/bin/env bash
# castbrick-push beside nginx+nchan, in one run, on loopback: same scenarios, stream counts,
# payloads and generator, then one table with the ratios.
#
#   loadtest/compare.sh                      # 10,000 streams, the figures of issue 3
#   STREAMS=2000 IDLE_SECS=5 loadtest/compare.sh   # a quick look
#
# Settings (environment):
#   STREAMS            streams per scenario                  (default 10000; at most 19000:
#                      one castbrick process holds about 19,500 streams under the
#                      20,000-open-files cap of this machine)
#   IDLE_SECS          idle hold; longer than the 15 s heartbeat so idle CPU counts one
#                      round of heartbeats                   (default 20)
#   BURST_EVENTS       broadcast burst size                  (default 200)
#   RATE_EVENTS        broadcast events at RATE per second   (default 100)
#   RATE               broadcast rate, events/s              (default 10)
#   FANOUT_PUBLISHERS  parallel publishers for fanout        (default 8)
#   PAYLOAD            event data bytes                      (default 100)
#   CB_PORT, NCHAN_PORT loopback ports                       (default 18480, 18490)
#   OUT                where results go                      (default target/loadtest/compare-<time>)
#   SKIP_BUILD=1       use the binaries in target/release as they are
#   SERVER_BIN, LOAD_BIN  other binaries to use (implies nothing about building)
#   ONLY=castbrick|nchan  run one side only
#
# Needs: nginx and libnginx-mod-nchan (Debian), cargo. Starts its own castbrick-push and nginx,
# and stops exactly those (by PID) on exit, whatever happens.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

STREAMS="${STREAMS:-10000}"
IDLE_SECS="${IDLE_SECS:-20}"
BURST_EVENTS="${BURST_EVENTS:-200}"
RATE_EVENTS="${RATE_EVENTS:-100}"
RATE="${RATE:-10}"
FANOUT_PUBLISHERS="${FANOUT_PUBLISHERS:-8}"
PAYLOAD="${PAYLOAD:-100}"
CB_PORT="${CB_PORT:-18480}"
NCHAN_PORT="${NCHAN_PORT:-18490}"
OUT="${OUT:-$root/target/loadtest/compare-$(date +%Y%m%d-%H%M%S)}"
ONLY="${ONLY:-}"

NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
API_KEY="cb_compare_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SIGNING_SECRET="compare-signing-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"

if [ "$STREAMS" -gt 19000 ]; then
  echo "STREAMS=$STREAMS: one castbrick-push process holds at most about 19,500 streams here" >&2
  exit 2
fi
if [ -z "$ONLY" ] || [ "$ONLY" = nchan ]; then
  command -v nginx >/dev/null || { echo "nginx missing: apt-get install -y nginx libnginx-mod-nchan" >&2; exit 2; }
  [ -f "$NCHAN_MODULE" ] || { echo "$NCHAN_MODULE missing: apt-get install -y libnginx-mod-nchan" >&2; exit 2; }
fi
for port in "$CB_PORT" "$NCHAN_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken; set CB_PORT / NCHAN_PORT" >&2
    exit 2
  fi
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p castbrick-push -p castbrick-load
fi
server_bin="${SERVER_BIN:-$root/target/release/castbrick-push}"
load_bin="${LOAD_BIN:-$root/target/release/castbrick-load}"

mkdir -p "$OUT"
work="$(mktemp -d /tmp/castbrick-compare.XXXXXX)"
CB_PID=""
NGINX_PID=""

stop() {
  # Only the two processes this script started, by PID; TERM, then KILL after 5 s.
  local pid
  for pid in $CB_PID $NGINX_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $CB_PID $NGINX_PID; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CB_PID=""
  NGINX_PID=""
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "the server on port $port exited; see $OUT" >&2; return 1; }
    sleep 0.1
  done
  echo "nothing listens on port $port after 10 s" >&2
  return 1
}

if [ -z "$ONLY" ] || [ "$ONLY" = castbrick ]; then
  CASTBRICK_API_KEYS="$API_KEY" CASTBRICK_SIGNING_SECRETS="$SIGNING_SECRET" \
    CASTBRICK_LISTEN="127.0.0.1:$CB_PORT" CASTBRICK_DATA_DIR="$work/castbrick-data" \
    "$server_bin" >"$OUT/castbrick-push.log" 2>&1 &
  CB_PID=$!
  wait_port "$CB_PORT" "$CB_PID"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = nchan ]; then
  mkdir -p "$work/nginx"
  sed "s/listen 127.0.0.1:8090/listen 127.0.0.1:$NCHAN_PORT/" loadtest/peers/nchan.conf >"$work/nginx/nchan.conf"
  # daemon off: $! is nginx's master; its two workers are its children and die with it.
  nginx -p "$work/nginx" -c "$work/nginx/nchan.conf" -e "$OUT/nginx-error.log" >"$OUT/nginx.log" 2>&1 &
  NGINX_PID=$!
  wait_port "$NCHAN_PORT" "$NGINX_PID"
fi

echo "results in $OUT"
echo "castbrick-push pid ${CB_PID:-none} on :$CB_PORT, nginx+nchan master pid ${NGINX_PID:-none} on :$NCHAN_PORT"
status=0
files=()

run() { # run <label> <target> <scenario args...>
  local label=$1 target=$2
  shift 2
  local pid url
  if [ "$target" = castbrick ]; then pid=$CB_PID url="http://127.0.0.1:$CB_PORT"; else pid=$NGINX_PID url="http://127.0.0.1:$NCHAN_PORT"; fi
  [ -n "$pid" ] || return 0
  echo "== $label: $target"
  local rc=0
  CASTBRICK_API_KEY="$API_KEY" "$load_bin" "$@" --target "$target" --url "$url" --server-pid "$pid" \
    --streams "$STREAMS" --payload-bytes "$PAYLOAD" --label "$label" --timeout 600 --quiet \
    >"$OUT/$label-$target.txt" 2>&1 || rc=$?
  files+=("$OUT/$label-$target.txt")
  grep -v '^RESULT ' "$OUT/$label-$target.txt" || true
  if [ "$rc" -ne 0 ]; then
    echo "   (castbrick-load exited $rc)"
    status=1
  fi
}

# Idle first, on fresh servers: RSS per stream is only meaningful before other runs grew it.
for t in castbrick nchan; do run idle "$t" idle --duration "$IDLE_SECS"; done
for t in castbrick nchan; do run broadcast-burst "$t" broadcast --events "$BURST_EVENTS"; done
for t in castbrick nchan; do run "broadcast-${RATE}ps" "$t" broadcast --events "$RATE_EVENTS" --rate "$RATE"; done
for t in castbrick nchan; do run fanout "$t" fanout --publishers "$FANOUT_PUBLISHERS"; done

echo
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); streams $STREAMS, payload $PAYLOAD B"
"$load_bin" compare-table "${files[@]}" | tee "$OUT/table.txt" || true
exit "$status"
