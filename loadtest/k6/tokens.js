// Token issuance: POST /push/tokens at full speed from VUS keep-alive connections.
//
//   k6 run -e CASTBRICK_API_KEY=$KEY -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/tokens.js
//
// Healthy: http_req_failed 0.00 %, checks 100 %, p(99) under the 25 ms threshold (p95 under 10 ms) on
// loopback, and every threshold marked with a tick; k6 exits 99 when a threshold fails.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, authHeaders, options as makeOptions, requireKey } from './common.js';

export const options = makeOptions(10, 25);

export function setup() {
  requireKey();
}

export default function () {
  const body = JSON.stringify({
    channels: [`k6-orders-${__VU}`, 'k6-announcements'],
    userId: `k6-user-${__VU}`,
    ttlSeconds: 600,
  });
  const res = http.post(`${BASE_URL}/push/tokens`, body, authHeaders());
  check(res, {
    'status 200': (r) => r.status === 200,
    'has token': (r) => typeof r.json('token') === 'string' && r.json('token').length > 0,
  });
}
