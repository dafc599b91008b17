// Publishing: POST /push/publish (castbrick) or POST /pub/<channel> (TARGET=nchan) at full
// speed from VUS keep-alive connections, to channels nobody subscribes to, so this measures
// the publish API alone. The data carries the publish time, like castbrick-load's events.
//
//   k6 run -e CASTBRICK_API_KEY=$KEY loadtest/k6/publish.js
//   k6 run -e TARGET=nchan -e BASE_URL=http://127.0.0.1:8090 loadtest/k6/publish.js
//
// Healthy: http_req_failed 0.00 %, checks 100 %, p(99) under the 25 ms threshold (p95 under 10 ms), every
// threshold ticked; k6 exits 99 when one fails.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, TARGET, authHeaders, options as makeOptions, requireKey } from './common.js';

export const options = makeOptions(10, 25);

export function setup() {
  requireKey();
}

let seq = 0;

export default function () {
  const channel = `k6-pub-${__VU % 16}`;
  const data = { t: Date.now() * 1e6, seq: seq++, c: 0, pad: 'x'.repeat(60) };
  let res;
  if (TARGET === 'nchan') {
    res = http.post(`${BASE_URL}/pub/${channel}`, JSON.stringify(data), {
      headers: { 'Content-Type': 'application/json' },
    });
    check(res, { 'status 2xx': (r) => r.status >= 200 && r.status < 300 });
  } else {
    const body = JSON.stringify({ channel, event: 'k6.test', data });
    res = http.post(`${BASE_URL}/push/publish`, body, authHeaders());
    check(res, {
      'status 200': (r) => r.status === 200,
      'has messageId': (r) => typeof r.json('messageId') === 'string',
    });
  }
}
