#!/usr/bin/env bash
# Publishing with oha, to a channel nobody subscribes to (the publish API alone):
#   CASTBRICK_API_KEY=... loadtest/oha/publish.sh                      (castbrick: POST /push/publish)
#   TARGET=nchan BASE_URL=http://127.0.0.1:8090 loadtest/oha/publish.sh (nchan: POST /pub/<channel>)
# Healthy: "Success rate: 100.00%"; status codes only [200] (castbrick) or [201]/[202] (nchan).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
if [ "$TARGET" = nchan ]; then
  exec oha --no-tui -z "${DURATION}s" -c "$CONNECTIONS" -m POST -T application/json \
    -d "$PUBLISH_DATA" "$BASE_URL/pub/oha-pub"
fi
need_key
exec oha --no-tui -z "${DURATION}s" -c "$CONNECTIONS" -m POST \
  -H "Authorization: Bearer $CASTBRICK_API_KEY" -T application/json \
  -d "{\"channel\":\"oha-pub\",\"event\":\"oha.test\",\"data\":$PUBLISH_DATA}" \
  "$BASE_URL/push/publish"
