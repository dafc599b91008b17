// Shared settings for the k6 scripts. Everything comes from the environment (k6 -e NAME=value
// or exported variables), so the same script loads castbrick-push and nginx+nchan.
//
//   BASE_URL            server root, loopback only      (default http://127.0.0.1:8080)
//   CASTBRICK_API_KEY   API key for tokens and publish  (required for castbrick)
//   TARGET              castbrick | nchan               (default castbrick; nchan: publish only)
//   VUS                 concurrent virtual users        (default 64: 64 keep-alive connections)
//   DURATION            how long to run                 (default 20s)
//   P95_MS, P99_MS      latency thresholds in ms        (defaults per script)
//   MAX_ERROR_RATE      failed-request threshold         (default 0.001 = 0.1 %)

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = __ENV.CASTBRICK_API_KEY || '';
export const TARGET = __ENV.TARGET || 'castbrick';

// Like castbrick-load, never aim at anything but this machine.
const host = BASE_URL.replace(/^http:\/\//, '').replace(/:\d+$/, '');
if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== 'localhost' && host !== '[::1]') {
  throw new Error(`BASE_URL ${BASE_URL}: only loopback targets are allowed`);
}

export function options(defaultP95, defaultP99) {
  return {
    scenarios: {
      steady: {
        executor: 'constant-vus',
        vus: Number(__ENV.VUS || 64),
        duration: __ENV.DURATION || '20s',
      },
    },
    thresholds: {
      http_req_failed: [`rate<${__ENV.MAX_ERROR_RATE || 0.001}`],
      http_req_duration: [
        `p(95)<${__ENV.P95_MS || defaultP95}`,
        `p(99)<${__ENV.P99_MS || defaultP99}`,
      ],
      checks: ['rate>0.999'],
    },
    // Latency percentiles are what the thresholds judge; print them all.
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'max'],
    // Bounded: k6 stops by itself after DURATION plus this grace.
    setupTimeout: '10s',
    teardownTimeout: '10s',
  };
}

export function authHeaders() {
  return {
    headers: {
      Authorization: `Bearer ${API_KEY}`,
      'Content-Type': 'application/json',
    },
  };
}

export function requireKey() {
  if (TARGET === 'castbrick' && !API_KEY) {
    throw new Error('set CASTBRICK_API_KEY (k6 run -e CASTBRICK_API_KEY=... or export it)');
  }
}
