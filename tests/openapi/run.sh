#!/usr/bin/env bash
# Checks a running server against docs/openapi.yaml with schemathesis (PyPI).
#
# Builds nothing: run `cargo build` first (CI runs it after `cargo test`, which builds
# target/debug/castbrick-push). Starts that binary on a free loopback port with a known API key,
# runs schemathesis with bounded examples, stops the server by its PID and exits non-zero on any
# failure. Without schemathesis it skips loudly, or fails when CASTBRICK_REQUIRE_ALL=1.
#
#   bash tests/openapi/run.sh                 # defaults
#   MAX_EXAMPLES=100 bash tests/openapi/run.sh
#   CASTBRICK_BIN=target/release/castbrick-push bash tests/openapi/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${CASTBRICK_BIN:-target/debug/castbrick-push}
MAX_EXAMPLES=${MAX_EXAMPLES:-30}
SPEC=docs/openapi.yaml

st=""
for c in schemathesis st; do
  if command -v "$c" >/dev/null 2>&1; then st=$c; break; fi
done
if [ -z "$st" ]; then
  if [ "${CASTBRICK_REQUIRE_ALL:-}" = 1 ]; then
    echo "openapi: schemathesis is required (CASTBRICK_REQUIRE_ALL=1) but not installed" >&2
    echo "openapi: install it with: python3 -m pip install schemathesis" >&2
    exit 1
  fi
  echo
  echo "!!! SKIPPED tests/openapi/run.sh: schemathesis is not installed; the API was NOT checked against $SPEC !!!"
  echo "!!! install it with: python3 -m pip install schemathesis"
  echo
  exit 0
fi
if [ ! -x "$BIN" ]; then
  echo "openapi: $BIN not found; build it first (cargo build)" >&2
  exit 1
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

key="cb_test_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
# Keys through the environment, not argv, as an operator would pass them.
CASTBRICK_API_KEYS="$key" CASTBRICK_SIGNING_SECRETS="$secret" CASTBRICK_LOG=warn \
  "$BIN" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$work/stderr" &
pid=$!

base=""
for _ in $(seq 1 100); do
  base=$(sed -n 's/^listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/stdout" | head -n1)
  [ -n "$base" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "openapi: server exited at start:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "openapi: server did not print its address within 10 s" >&2
  exit 1
fi
echo "openapi: server pid $pid at $base; $($st --version 2>/dev/null | head -n1)"

# The stateful phase is left out: it would chain POST /push/tokens into GET /push/stream, and a
# valid token opens a stream that never ends. Generated tokens are never valid, so every stream
# request here is answered at once; --request-timeout bounds anything that is not.
# Run from the scratch directory: schemathesis keeps a `.schemathesis/` cache in its working
# directory, which must neither land in the repository nor carry failures from run to run.
spec_path="$PWD/$SPEC"
status=0
(cd "$work" && "$st" run "$spec_path" \
  --url "$base" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 5 \
  --workers 1 \
  --generation-database none \
  --no-color \
  --report junit --report-dir "$work/report") \
  || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
  echo "openapi: the server died during the run:" >&2
  cat "$work/stderr" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "openapi: FAILED (schemathesis exit $status); server log:" >&2
  tail -n 50 "$work/stderr" >&2
  exit "$status"
fi
echo "openapi: the server conforms to $SPEC"
