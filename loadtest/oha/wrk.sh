#!/usr/bin/env bash
# The same endpoints with wrk (Debian package wrk), POST bodies through wrk-post.lua:
#   CASTBRICK_API_KEY=... loadtest/oha/wrk.sh publish     (POST /push/publish)
#   CASTBRICK_API_KEY=... loadtest/oha/wrk.sh tokens      (POST /push/tokens)
#   TARGET=nchan BASE_URL=http://127.0.0.1:8090 loadtest/oha/wrk.sh publish   (POST /pub/<channel>)
# Healthy: "non-2xx responses: 0", no "Socket errors" line, Requests/sec as the headline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
what="${1:-publish}"
case "$TARGET:$what" in
  castbrick:publish)
    need_key
    export WRK_AUTH=1 WRK_BODY="{\"channel\":\"wrk-pub\",\"event\":\"wrk.test\",\"data\":$PUBLISH_DATA}"
    path=/push/publish ;;
  castbrick:tokens)
    need_key
    export WRK_AUTH=1 WRK_BODY='{"channels":["wrk-orders","wrk-announcements"],"userId":"wrk-user","ttlSeconds":600}'
    path=/push/tokens ;;
  nchan:publish)
    export WRK_AUTH=0 WRK_BODY="$PUBLISH_DATA"
    path=/pub/wrk-pub ;;
  *) echo "usage: [TARGET=castbrick|nchan] $0 publish|tokens (nchan has no tokens)" >&2; exit 2 ;;
esac
exec wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$here/wrk-post.lua" "$BASE_URL$path"
