// connect() of clients/js/castbrick-push.js against a scripted fetch: the reconnect, token and
// resume logic, with no server. (client.test.mjs runs the same helper against the real server.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../clients/js/castbrick-push.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(fn, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * A fake server: each stream request is recorded and answered by the next script in `scripts`,
 * an async function (stream, request) that writes bytes with stream.send(...), then returns to
 * end the response, or throws to cut it. A script may instead return { status, body } at once.
 */
function fakeServer(scripts) {
  const requests = [];
  const fetch = async (url, init) => {
    const request = { url: new URL(url), headers: init.headers, signal: init.signal };
    requests.push(request);
    const script = scripts[Math.min(requests.length - 1, scripts.length - 1)];
    const encoder = new TextEncoder();
    let controller;
    const body = new ReadableStream({
      start(c) {
        controller = c;
      },
    });
    const stream = {
      send(chunk) {
        controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
      },
    };
    init.signal.addEventListener('abort', () => {
      try {
        controller.error(new DOMException('aborted', 'AbortError'));
      } catch {
        /* already closed */
      }
    });
    if (script.status) {
      return new Response(script.body ?? '', { status: script.status, headers: { 'content-type': script.type ?? 'application/json' } });
    }
    (async () => {
      try {
        await script(stream, request);
        controller.close();
      } catch (err) {
        try {
          controller.error(err);
        } catch {
          /* aborted */
        }
      }
    })();
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
  return { fetch, requests };
}

const token = (name, ttlMs = 3600e3) => ({ token: name, expiresAt: new Date(Date.now() + ttlMs).toISOString() });
const forever = () => new Promise(() => {});

function recorder(extra = {}) {
  const seen = { events: [], connected: [], gaps: [], expired: [], states: [], errors: [], tokens: 0 };
  const options = {
    baseUrl: 'http://push.test',
    initialDelayMs: 20,
    getToken: async () => token(`t${++seen.tokens}`),
    onEvent: (name, data, id) => seen.events.push([name, data, id]),
    onConnected: (info) => seen.connected.push(info),
    onGap: (info) => seen.gaps.push(info),
    onExpired: (info) => seen.expired.push(info),
    onStatus: (state, detail) => seen.states.push([state, detail.reason ?? null]),
    onError: (err) => seen.errors.push(err),
    ...extra,
  };
  return { seen, options };
}

test('frames split at every byte, UTF-8 included, arrive whole', async () => {
  const frames = 'event: connected\ndata: {"channels":["a"]}\n\nid: 1\nevent: e\ndata: {"s":"ação 😀"}\n\n: hb\n\nid: 2\r\nevent: e\r\ndata: {"s":"日本"}\r\n\r\n';
  const bytes = new TextEncoder().encode(frames);
  const server = fakeServer([
    async (stream) => {
      for (const b of bytes) stream.send(new Uint8Array([b]));
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch });
  const sub = connect(options);
  await waitFor(() => seen.events.length === 2, 'two events');
  sub.close();
  assert.deepEqual(seen.events, [['e', { s: 'ação 😀' }, '1'], ['e', { s: '日本' }, '2']]);
  assert.equal(sub.lastEventId, '2');
  assert.equal(server.requests[0].url.searchParams.get('token'), 't1');
  assert.equal(server.requests[0].headers.Accept, 'text/event-stream');
});

test('a stream that ends is resumed with Last-Event-ID and the same token', async () => {
  const server = fakeServer([
    async (s) => s.send('event: connected\ndata: {"channels":["a"]}\n\nid: 7\nevent: e\ndata: 1\n\n'),
    async (s) => {
      s.send('event: connected\ndata: {"channels":["a"],"replayed":0,"complete":true}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch });
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 2, 'the second connection');
  sub.close();
  assert.equal(server.requests[1].headers['Last-Event-ID'], '7');
  assert.equal(server.requests[1].url.searchParams.get('token'), 't1');
  assert.equal(seen.tokens, 1);
  assert.deepEqual(seen.events, [['e', 1, '7']]);
  assert.ok(seen.states.some(([state, reason]) => state === 'reconnecting' && reason === 'ended'));
});

test('an id on the connected frame becomes the resume point', async () => {
  const server = fakeServer([
    async (s) => s.send('id: 42\nevent: connected\ndata: {"channels":["a"]}\n\n'),
    async (s) => {
      s.send('event: connected\ndata: {"channels":["a"],"replayed":0,"complete":true}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch });
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 2, 'the second connection');
  sub.close();
  assert.equal(server.requests[1].headers['Last-Event-ID'], '42');
  assert.deepEqual(seen.events, [], 'connected is not an application event');
});

test('a cut stream (network error) is resumed after a backoff delay', async () => {
  const server = fakeServer([
    async (s) => {
      s.send('event: connected\ndata: {}\n\nid: 1\nevent: e\ndata: 1\n\nid: 2\nevent: e\nda');
      await sleep(50); // let the reader take the bytes: erroring a stream drops what it still queues
      throw new TypeError('terminated');
    },
    async (s) => {
      s.send('event: connected\ndata: {"replayed":1,"complete":true}\n\nid: 2\nevent: e\ndata: 2\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch });
  const sub = connect(options);
  await waitFor(() => seen.events.length === 2, 'both events');
  sub.close();
  assert.equal(server.requests[1].headers['Last-Event-ID'], '1', 'the half-received event 2 was not counted');
  assert.deepEqual(seen.events.map((e) => e[1]), [1, 2]);
  assert.ok(seen.states.some(([state, reason]) => state === 'reconnecting' && reason === 'network'));
});

test('`expired` fetches a new token and resumes at once', async () => {
  const server = fakeServer([
    async (s) => {
      s.send('event: connected\ndata: {}\n\nid: 5\nevent: e\ndata: 1\n\n');
      await sleep(1100); // older than a second: no backoff
      s.send('event: expired\ndata: {"reason":"token_expired"}\n\n');
      await forever(); // the helper must not wait for the server to close
    },
    async (s) => {
      s.send('event: connected\ndata: {"replayed":0,"complete":true}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch });
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 2, 'the connection after expiry');
  sub.close();
  assert.deepEqual(seen.expired, [{ reason: 'token_expired' }]);
  assert.equal(seen.tokens, 2);
  assert.equal(server.requests[1].url.searchParams.get('token'), 't2');
  assert.equal(server.requests[1].headers['Last-Event-ID'], '5');
});

test('401 and 403: the token is dropped and getToken asked again, with backoff', async () => {
  const server = fakeServer([
    { status: 401, body: '{"error":{"code":"invalid_token","message":"bad"}}' },
    { status: 403, body: '{"error":{"code":"forbidden","message":"no"}}' },
    async (s) => {
      s.send('event: connected\ndata: {}\n\n');
      await forever();
    },
  ]);
  const times = [];
  const { seen, options } = recorder({
    fetch: server.fetch,
    initialDelayMs: 100,
    getToken: async () => {
      times.push(Date.now());
      return token(`t${++seen.tokens}`);
    },
  });
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 1, 'connected with the third token');
  sub.close();
  assert.deepEqual(server.requests.map((r) => r.url.searchParams.get('token')), ['t1', 't2', 't3']);
  assert.deepEqual(seen.errors.map((e) => e.status), [401, 403]);
  assert.ok(times[1] - times[0] >= 50 && times[2] - times[1] >= 100, `delays ${times[1] - times[0]}, ${times[2] - times[1]} ms`);
});

test('a response that is not an event stream is retried with backoff', async () => {
  const server = fakeServer([
    { status: 200, body: '<html>proxy login</html>', type: 'text/html' },
    { status: 503, body: 'busy' },
    async (s) => {
      s.send('event: connected\ndata: {}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch });
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 1, 'connected');
  sub.close();
  assert.equal(seen.tokens, 1, 'only 401/403 cost the token');
  assert.deepEqual(seen.states.filter(([s]) => s === 'reconnecting').map(([, r]) => r), ['http_200', 'http_503']);
});

test('`complete: false` reaches onGap with the id the helper resumed from', async () => {
  const server = fakeServer([
    async (s) => {
      s.send('event: connected\ndata: {"channels":["a"],"replayed":3,"complete":false}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch, lastEventId: 'old-id' });
  const sub = connect(options);
  await waitFor(() => seen.gaps.length === 1, 'onGap');
  sub.close();
  assert.equal(server.requests[0].headers['Last-Event-ID'], 'old-id');
  assert.deepEqual(seen.gaps[0], { channels: ['a'], replayed: 3, complete: false, lastEventId: 'old-id' });
});

test('silence longer than idleTimeoutMs reconnects; heartbeats keep the stream', async () => {
  const server = fakeServer([
    async (s) => {
      s.send('event: connected\ndata: {}\n\n');
      for (let i = 0; i < 4; i++) {
        await sleep(80);
        s.send(': heartbeat\n\n');
      }
      await forever(); // then silence
    },
    async (s) => {
      s.send('event: connected\ndata: {}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({ fetch: server.fetch, idleTimeoutMs: 200 });
  const started = Date.now();
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 2, 'the reconnect after silence');
  sub.close();
  assert.ok(Date.now() - started >= 500, 'heartbeats kept the first stream open');
  assert.ok(seen.states.some(([state, reason]) => state === 'reconnecting' && reason === 'idle'));
});

test('an early refresh swaps streams before expiresAt, resuming from the last id', async () => {
  const server = fakeServer([
    async (s) => {
      s.send('event: connected\ndata: {}\n\nid: 9\nevent: e\ndata: 1\n\n');
      await forever();
    },
    async (s) => {
      s.send('event: connected\ndata: {"replayed":0,"complete":true}\n\n');
      await forever();
    },
  ]);
  const { seen, options } = recorder({
    fetch: server.fetch,
    getToken: async () => {
      seen.tokens++;
      return token(`t${seen.tokens}`, seen.tokens === 1 ? 1000 : 3600e3);
    },
  });
  const sub = connect(options);
  await waitFor(() => seen.connected.length === 2, 'the refreshed stream', 3000);
  sub.close();
  assert.equal(server.requests[1].url.searchParams.get('token'), 't2');
  assert.equal(server.requests[1].headers['Last-Event-ID'], '9');
  assert.ok(server.requests[0].signal.aborted, 'the old stream was closed');
  assert.deepEqual(seen.expired, []);
});

test('close() during getToken: nothing is opened and no callback follows', async () => {
  let release;
  const server = fakeServer([forever]);
  const { seen, options } = recorder({
    fetch: server.fetch,
    getToken: () => new Promise((resolve) => (release = () => resolve(token('late')))),
  });
  const sub = connect(options);
  await waitFor(() => release, 'getToken');
  sub.close();
  const count = seen.states.length;
  release();
  await sleep(50);
  assert.equal(server.requests.length, 0);
  assert.equal(seen.states.length, count);
  assert.equal(sub.state, 'closed');
});

test('an exception in an application callback is reported, and the stream goes on', async () => {
  const server = fakeServer([
    async (s) => {
      s.send('event: connected\ndata: {}\n\nid: 1\nevent: e\ndata: 1\n\nid: 2\nevent: e\ndata: 2\n\n');
      await forever();
    },
  ]);
  const got = [];
  const { seen, options } = recorder({
    fetch: server.fetch,
    onEvent: (name, data) => {
      got.push(data);
      if (data === 1) throw new Error('app bug');
    },
  });
  const sub = connect(options);
  await waitFor(() => got.length === 2, 'both events');
  sub.close();
  assert.equal(seen.errors[0].message, 'app bug');
  assert.equal(sub.lastEventId, '2');
});

test('callbacks never run before connect() returns', () => {
  let sub;
  let early = false;
  sub = connect({
    baseUrl: 'http://push.test',
    getToken: async () => null,
    onStatus: () => {
      if (!sub) early = true;
    },
  });
  assert.equal(early, false);
  sub.close();
});
