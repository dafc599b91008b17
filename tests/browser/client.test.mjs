// The client helper (clients/js/castbrick-push.js) under Node, against the real server binary.
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../clients/js/castbrick-push.js';
import { gate, gatedTest, issueToken, missingServer, publish, sleep, startProxy, startServer, waitFor } from './lib/harness.mjs';

const g = gate(missingServer());
const canRun = !missingServer();
const it = gatedTest(g);

/**
 * Opens a subscription through `baseUrl` and records everything the application sees.
 * `tokenOptions` go into POST /push/tokens; the rest of `options` into connect().
 */
function subscribe(server, baseUrl, channels, { tokenOptions = {}, ...options } = {}) {
  const seen = { events: [], connected: [], gaps: [], expired: [], statuses: [], errors: [], tokens: 0, requests: [] };
  const sub = connect({
    baseUrl,
    async getToken() {
      seen.tokens++;
      return issueToken(server, channels, tokenOptions);
    },
    onEvent: (name, data, id) => seen.events.push({ name, data, id }),
    onConnected: (info) => seen.connected.push(info),
    onGap: (info) => seen.gaps.push(info),
    onExpired: (info) => seen.expired.push(info),
    onStatus: (state, detail) => seen.statuses.push({ state, ...detail }),
    onError: (err) => seen.errors.push(err),
    fetch: (url, init) => {
      seen.requests.push({ url: String(url), lastEventId: init.headers['Last-Event-ID'] ?? null });
      return fetch(url, init);
    },
    ...options,
  });
  return { sub, seen };
}

const numbers = (seen) => seen.events.map((e) => e.data.n);
const range = (n) => [...Array(n).keys()];

/** Publishes n = from..to-1 to `channel`, one every `everyMs`, calling hooks[n]() before n. */
async function publishRun(server, channel, from, to, everyMs, hooks = {}) {
  const ids = [];
  for (let n = from; n < to; n++) {
    if (hooks[n]) await hooks[n]();
    ids.push((await publish(server, channel, 'tick', { n })).messageId);
    if (everyMs) await sleep(everyMs);
  }
  return ids;
}

describe('client helper against the server', () => {
  let server;
  before(async () => {
    if (canRun) server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('events arrive with their ids, names and parsed data', async () => {
    const { sub, seen } = subscribe(server, server.origin, ['basic']);
    try {
      await waitFor(() => seen.connected.length === 1, 'connected');
      assert.deepEqual(seen.connected[0].channels, ['basic']);
      const r = await publish(server, 'basic', 'order.created', { orderId: 'abc123', total: 4999, note: 'ação 😀' });
      await waitFor(() => seen.events.length === 1, 'the event');
      assert.deepEqual(seen.events[0], {
        name: 'order.created',
        data: { orderId: 'abc123', total: 4999, note: 'ação 😀' },
        id: r.messageId,
      });
      assert.equal(sub.lastEventId, r.messageId);
      assert.equal(sub.state, 'open');
    } finally {
      sub.close();
    }
    assert.equal(sub.state, 'closed');
  });

  it('reconnect after the stream is cut loses nothing and duplicates nothing', async () => {
    const proxy = await startProxy(server.port);
    const { sub, seen } = subscribe(server, proxy.origin, ['drops'], { initialDelayMs: 100 });
    try {
      await waitFor(() => seen.connected.length === 1, 'connected');
      await publishRun(server, 'drops', 0, 5, 0);
      await waitFor(() => seen.events.length === 5, 'the first five events');

      // Cut the stream and keep the door shut while five more are published.
      proxy.refuse(true);
      proxy.dropAll();
      await publishRun(server, 'drops', 5, 10, 20);
      proxy.refuse(false);
      await waitFor(() => seen.events.length >= 10, 'the five events published while cut');
      assert.equal(seen.connected.length, 2);
      assert.equal(seen.connected[1].replayed, 5);
      assert.equal(seen.connected[1].complete, true);

      // Now cut it twice more while events keep flowing.
      await publishRun(server, 'drops', 10, 60, 10, {
        20: () => proxy.dropAll(),
        40: async () => {
          proxy.refuse(true);
          proxy.dropAll();
          await sleep(150);
          proxy.refuse(false);
        },
      });
      await waitFor(() => seen.events.length >= 60, 'all 60 events', 15000);
      await sleep(200); // a duplicate would arrive now
      assert.deepEqual(numbers(seen), range(60));
      assert.equal(seen.gaps.length, 0);
      assert.ok(seen.statuses.some((s) => s.state === 'reconnecting'));
      // Every reconnect carried the last id it had seen.
      for (const req of seen.requests.slice(1)) assert.ok(req.lastEventId, `reconnect without Last-Event-ID: ${req.url}`);
      assert.equal(seen.tokens, 1, 'a cut stream reuses the token');
    } finally {
      sub.close();
      await proxy.close();
    }
  });

  it('token refresh on `expired` loses nothing', async () => {
    // refreshMarginMs: false: no early refresh, so the server's `expired` event drives it.
    const { sub, seen } = subscribe(server, server.origin, ['expiry'], {
      tokenOptions: { ttlSeconds: 2 },
      refreshMarginMs: false,
    });
    try {
      await waitFor(() => seen.connected.length === 1, 'connected');
      await publishRun(server, 'expiry', 0, 100, 50); // ~5 s: two or three token lifetimes
      await waitFor(() => seen.events.length >= 100, 'all 100 events', 15000);
      await sleep(200);
      assert.deepEqual(numbers(seen), range(100));
      assert.ok(seen.expired.length >= 1, `expected an expired event, got ${seen.expired.length}`);
      assert.ok(seen.tokens >= 2, `expected a fresh token after expiry, getToken called ${seen.tokens} times`);
      assert.ok(seen.connected.slice(1).every((c) => c.complete === true), JSON.stringify(seen.connected));
    } finally {
      sub.close();
    }
  });

  it('a token is refreshed before expiresAt without losing events', async () => {
    const { sub, seen } = subscribe(server, server.origin, ['refresh'], { tokenOptions: { ttlSeconds: 4 } });
    try {
      await waitFor(() => seen.connected.length === 1, 'connected');
      await publishRun(server, 'refresh', 0, 100, 50);
      await waitFor(() => seen.events.length >= 100, 'all 100 events', 15000);
      await sleep(200);
      assert.deepEqual(numbers(seen), range(100));
      assert.ok(seen.tokens >= 2, `getToken called ${seen.tokens} times`);
      assert.equal(seen.expired.length, 0, 'the token was replaced before the server expired it');
    } finally {
      sub.close();
    }
  });

  it('a rejected token is never retried: getToken is asked again, with backoff', async () => {
    let calls = 0;
    const times = [];
    const requests = [];
    let connected = null;
    const sub = connect({
      baseUrl: server.origin,
      initialDelayMs: 200,
      async getToken() {
        calls++;
        times.push(Date.now());
        if (calls <= 2) return { token: `not-a-token-${calls}`, expiresAt: new Date(Date.now() + 3600e3).toISOString() };
        return issueToken(server, ['rejected']);
      },
      onConnected: (info) => {
        connected = info;
      },
      fetch: (url, init) => {
        requests.push(new URL(url).searchParams.get('token'));
        return fetch(url, init);
      },
    });
    try {
      await waitFor(() => connected, 'connected with the third token');
      assert.equal(calls, 3);
      assert.deepEqual(requests.slice(0, 2), ['not-a-token-1', 'not-a-token-2']);
      assert.ok(times[1] - times[0] >= 100, `no backoff between token requests: ${times[1] - times[0]} ms`);
    } finally {
      sub.close();
    }
  });

  it('getToken returning null stops the subscription', async () => {
    const states = [];
    const sub = connect({ baseUrl: server.origin, getToken: async () => null, onStatus: (s, d) => states.push([s, d.reason]) });
    await waitFor(() => sub.state === 'closed', 'closed');
    assert.deepEqual(states.at(-1), ['closed', 'no_token']);
  });

  it('lastEventIdIn: "query" resumes through the lastEventId parameter', async () => {
    const first = await publish(server, 'query', 'tick', { n: 0 });
    await publish(server, 'query', 'tick', { n: 1 });
    await publish(server, 'query', 'tick', { n: 2 });
    const { sub, seen } = subscribe(server, server.origin, ['query'], { lastEventId: first.messageId, lastEventIdIn: 'query' });
    try {
      await waitFor(() => seen.events.length >= 2, 'the replayed events');
      assert.equal(seen.requests[0].lastEventId, null);
      assert.equal(new URL(seen.requests[0].url).searchParams.get('lastEventId'), first.messageId);
      assert.deepEqual(seen.connected[0].replayed, 2);
      assert.deepEqual(numbers(seen), [1, 2]);
    } finally {
      sub.close();
    }
  });
});

describe('client helper: incomplete replay', () => {
  let server;
  before(async () => {
    if (!canRun) return;
    // Three events of history per channel, so a longer outage cannot be replayed in full.
    server = await startServer({ env: { CASTBRICK_REPLAY_CAPACITY: '3' } });
  });
  after(async () => {
    await server?.stop();
  });

  it('`complete: false` reaches the application through onGap', async () => {
    const proxy = await startProxy(server.port);
    const { sub, seen } = subscribe(server, proxy.origin, ['gappy'], { initialDelayMs: 100 });
    try {
      await waitFor(() => seen.connected.length === 1, 'connected');
      const [firstId] = await publishRun(server, 'gappy', 0, 1, 0);
      await waitFor(() => seen.events.length === 1, 'the first event');
      proxy.refuse(true);
      proxy.dropAll();
      await publishRun(server, 'gappy', 1, 11, 0); // ten events, the ring keeps three
      proxy.refuse(false);
      await waitFor(() => seen.gaps.length === 1, 'onGap');
      assert.equal(seen.gaps[0].complete, false);
      assert.equal(seen.gaps[0].lastEventId, firstId);
      assert.equal(seen.connected[1].complete, false);
      await waitFor(() => seen.events.length >= 4, 'the three replayed events');
      assert.deepEqual(numbers(seen), [0, 8, 9, 10]);
      // Live events keep flowing after the gap.
      await publish(server, 'gappy', 'tick', { n: 11 });
      await waitFor(() => seen.events.length >= 5, 'a live event after the gap');
      assert.deepEqual(numbers(seen), [0, 8, 9, 10, 11]);
    } finally {
      sub.close();
      await proxy.close();
    }
  });
});
