# Shared by the oha and wrk scripts: settings from the environment, loopback-only check.
#   BASE_URL           server root             (default http://127.0.0.1:8080)
#   CASTBRICK_API_KEY  API key                 (required for castbrick endpoints)
#   TARGET             castbrick | nchan       (default castbrick; nchan has no tokens)
#   CONNECTIONS        keep-alive connections  (default 64)
#   DURATION           seconds                 (default 20)
#   THREADS            wrk threads             (default 2)
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
BASE_URL="${BASE_URL%/}"
TARGET="${TARGET:-castbrick}"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-20}"
THREADS="${THREADS:-2}"

host="${BASE_URL#http://}"
host="${host%:*}"
case "$host" in
  127.*.*.* | localhost | "[::1]") ;;
  *) echo "BASE_URL $BASE_URL: only loopback targets are allowed" >&2; exit 2 ;;
esac
case "$DURATION" in
  '' | *[!0-9]*) echo "DURATION is whole seconds" >&2; exit 2 ;;
esac
if [ "$DURATION" -gt 3600 ]; then echo "DURATION is at most 3600 seconds" >&2; exit 2; fi

need_key() {
  if [ -z "${CASTBRICK_API_KEY:-}" ]; then
    echo "set CASTBRICK_API_KEY" >&2
    exit 2
  fi
}

# The JSON data every publisher sends: same size as castbrick-load's default 100-byte payload.
PUBLISH_DATA='{"t":1700000000000000000,"seq":0,"c":0,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'
