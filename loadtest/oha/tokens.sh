#!/usr/bin/env bash
# Token issuance with oha: POST /push/tokens from CONNECTIONS keep-alive connections.
#   CASTBRICK_API_KEY=... loadtest/oha/tokens.sh
# Healthy: "Success rate: 100.00%", only [200] in the status code distribution.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
need_key
exec oha --no-tui -z "${DURATION}s" -c "$CONNECTIONS" -m POST \
  -H "Authorization: Bearer $CASTBRICK_API_KEY" -T application/json \
  -d '{"channels":["oha-orders","oha-announcements"],"userId":"oha-user","ttlSeconds":600}' \
  "$BASE_URL/push/tokens"
