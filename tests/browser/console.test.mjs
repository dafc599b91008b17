// The Developer Console in a real headless Chromium, against the real server binary.
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT,
  SCREENSHOT_DIR,
  gate,
  gatedTest,
  issueToken,
  launchChromium,
  missingChromium,
  missingCommand,
  missingPlaywright,
  missingServer,
  publish,
  sleep,
  startProxy,
  startServer,
  waitFor,
} from './lib/harness.mjs';

const browserGate = gate(missingServer(), missingPlaywright(), missingChromium());
const curlGate = gate(missingServer(), missingPlaywright(), missingChromium(), missingCommand('curl'));
const it = gatedTest(browserGate);
const itWithCurl = gatedTest(curlGate);
const canRun = !missingServer() && !missingPlaywright() && !missingChromium();

let server;
let browser;

/**
 * A fresh browser context on `origin`/console, with clipboard access and a record of every
 * request the page makes and every error it logs.
 */
async function openConsole(origin, { clockBehindMs = 0 } = {}) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, colorScheme: 'light' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  if (clockBehindMs) await context.clock.install({ time: new Date(Date.now() - clockBehindMs) });
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
  });
  await page.goto(`${origin}/console`);
  await page.waitForSelector('#server-origin:not(:empty)');
  return { context, page, requests, errors };
}

async function enterKey(page, key = server.key) {
  await page.fill('#api-key', key);
}

async function subscribeIn(page, channels, { ttl = null, resume = null } = {}) {
  await page.fill('#sub-channels', channels);
  if (ttl !== null) await page.fill('#sub-ttl', String(ttl));
  if (resume !== null) await page.fill('#sub-resume', resume);
  const before = await page.locator('#log .entry--connected').count();
  await page.click('#subscribe');
  await page.waitForFunction((n) => document.querySelectorAll('#log .entry--connected').length > n, before);
}

async function copySnippet(page, tabId) {
  await page.click(`#${tabId}`);
  await page.click('#copy-snippet');
  await page.waitForFunction(() => document.getElementById('copy-status').textContent.startsWith('Copied'));
  return page.evaluate(() => navigator.clipboard.readText());
}

/** Spawns `command args` in its own process group; collects stdout; kill() ends the group. */
function runProcess(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  const proc = { stdout: '', stderr: '', exited: null };
  child.stdout.on('data', (d) => (proc.stdout += d));
  child.stderr.on('data', (d) => (proc.stderr += d));
  proc.done = new Promise((resolve) => child.once('exit', (code) => resolve((proc.exited = { code }))));
  proc.kill = async () => {
    if (proc.exited) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    await Promise.race([proc.done, sleep(3000)]);
  };
  return proc;
}

function tmpFile(name, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'castbrick-snippet-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return { file, dir };
}

function onlyTalksTo(origin, requests) {
  const stray = requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('data:'));
  assert.deepEqual(stray, [], 'the console must not talk to anything but its server');
}

describe('Developer Console in Chromium', () => {
  before(async () => {
    if (!canRun) return;
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    server = await startServer();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('subscribe, publish from the page, and see the event in the live view', async () => {
    const { context, page, requests, errors } = await openConsole(server.origin);
    try {
      await enterKey(page);
      await subscribeIn(page, 'orders, notifications');
      const connected = page.locator('#log .entry--connected').first();
      assert.match(await connected.textContent(), /channels orders, notifications/);
      await waitFor(async () => (await page.locator('.sub .pill').textContent()) === 'open', 'the open pill');

      assert.equal(await page.inputValue('#pub-channel'), 'orders', 'the publish form picks up the channel');
      await page.fill('#pub-event', 'order.created');
      await page.fill('#pub-data', '{"orderId": "abc123", "total": 4999, "currency": "AOA"}');
      await page.click('#publish');
      await page.waitForSelector('#result-message-id');
      const messageId = await page.textContent('#result-message-id');
      assert.ok(Number(await page.textContent('#result-delivered')) >= 1, 'delivered counts this page');

      const entry = page.locator(`#log .entry--event[data-id="${messageId}"]`);
      await entry.waitFor();
      assert.equal(await entry.locator('.entry__name').textContent(), 'order.created');
      assert.equal(
        await entry.locator('.entry__data').textContent(),
        JSON.stringify({ orderId: 'abc123', total: 4999, currency: 'AOA' }, null, 2),
      );
      assert.match(await entry.locator('.entry__time').textContent(), /^\d\d:\d\d:\d\d\.\d{3}$/);

      // The key stays out of URLs, cookies and storage (the box was not ticked).
      assert.ok(!requests.some((u) => u.includes(server.key)), 'the key appeared in a URL');
      assert.equal(await page.evaluate(() => document.cookie), '');
      assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
      onlyTalksTo(server.origin, requests);
      assert.deepEqual(errors, []);

      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'console-live.png') });
    } finally {
      await context.close();
    }
  });

  it('the copied JavaScript snippet runs under Node, receives events and resumes after a drop', async () => {
    const proxy = await startProxy(server.port);
    const { context, page, requests } = await openConsole(proxy.origin);
    let proc = null;
    let tmp = null;
    try {
      await enterKey(page);
      await page.fill('#snip-channel', 'snippet-js');
      const code = await copySnippet(page, 'tab-js');
      assert.ok(code.includes(server.key), 'the copied snippet carries the full key');
      assert.ok(code.includes('"snippet-js"'));
      assert.ok(code.includes("headers['Last-Event-ID'] = lastEventId"));
      // The preview masks the key unless asked.
      assert.ok(!(await page.textContent('#snippet-code')).includes(server.key));

      tmp = tmpFile('subscribe.mjs', code);
      proc = runProcess(process.execPath, [tmp.file]);
      await waitFor(() => /^connected /m.test(proc.stdout), `the snippet's connected line (stderr: ${proc.stderr})`, 15000);
      const first = await publish(server, 'snippet-js', 'snippet.test', { n: 1 });
      await waitFor(() => proc.stdout.includes(`snippet.test ${first.messageId} {"n":1}`), 'the first event in the snippet output');

      // Cut the stream; publish while the snippet is away; it must come back with Last-Event-ID.
      proxy.refuse(true);
      proxy.dropAll();
      const second = await publish(server, 'snippet-js', 'snippet.test', { n: 2 });
      await sleep(300);
      proxy.refuse(false);
      await waitFor(() => proc.stdout.includes(`snippet.test ${second.messageId} {"n":2}`), 'the missed event, replayed', 15000);
      const connects = proc.stdout.split('\n').filter((l) => l.startsWith('connected ')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
      assert.equal(connects.length, 2, proc.stdout);
      assert.deepEqual(connects[1], { channels: ['snippet-js'], replayed: 1, complete: true });

      onlyTalksTo(proxy.origin, requests);
      await page.locator('.snippets').screenshot({ path: path.join(SCREENSHOT_DIR, 'console-snippets.png') });
    } finally {
      await proc?.kill();
      if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
      await context.close();
      await proxy.close();
    }
  });

  itWithCurl('the copied curl snippets publish and subscribe from a shell', async () => {
    const { context, page } = await openConsole(server.origin);
    let watcher = null;
    try {
      await enterKey(page);
      await subscribeIn(page, 'curl-chan');
      await page.fill('#pub-event', 'curl.test');
      await page.fill('#pub-data', `{"from": "curl", "quote": "it's"}`);

      // curl: subscribe, as pasted, in its own shell.
      const subscribeCode = await copySnippet(page, 'tab-curl-subscribe');
      watcher = runProcess('sh', ['-c', subscribeCode]);
      await waitFor(() => watcher.stdout.includes('event: connected'), `curl's stream (stderr: ${watcher.stderr})`, 10000);

      // curl: publish, as pasted.
      const publishCode = await copySnippet(page, 'tab-curl-publish');
      assert.ok(publishCode.includes(server.key));
      const run = runProcess('sh', ['-c', publishCode]);
      await run.done;
      assert.equal(run.exited.code, 0, run.stderr);
      const reply = JSON.parse(run.stdout);
      assert.ok(reply.messageId, run.stdout);
      assert.equal(reply.delivered, 2, 'the page and the curl stream');

      await page.locator(`#log .entry--event[data-id="${reply.messageId}"]`).waitFor();
      await waitFor(() => watcher.stdout.includes(`id: ${reply.messageId}`), 'the event on the curl stream');
      assert.ok(watcher.stdout.includes(`data: {"from":"curl","quote":"it's"}`), watcher.stdout);
    } finally {
      await watcher?.kill();
      await context.close();
    }
  });

  it('reconnects, replays and token refreshes are shown in the live view', async () => {
    const proxy = await startProxy(server.port);
    const { context, page, errors } = await openConsole(proxy.origin);
    try {
      const early = await publish(server, 'replay-chan', 'tick', { n: 0 });
      await publish(server, 'replay-chan', 'tick', { n: 1 });
      await enterKey(page);
      // Resume after the first event: the server replays the second.
      await subscribeIn(page, 'replay-chan', { ttl: 3, resume: early.messageId });
      assert.match(await page.locator('#log .entry--connected').first().textContent(), /replayed 1 · complete true/);
      await page.locator('#log .entry--event[data-event="tick"]').first().waitFor();

      proxy.refuse(true);
      proxy.dropAll();
      const missed = await publish(server, 'replay-chan', 'tick', { n: 2 });
      await page.locator('#log .entry--reconnect').first().waitFor();
      proxy.refuse(false);
      await page.locator(`#log .entry--event[data-id="${missed.messageId}"]`).waitFor({ timeout: 15000 });
      assert.match(await page.locator('#log .entry--connected').first().textContent(), /replayed 1 · complete true/);

      // TTL 3 s: the page fetches a new token before expiry and swaps streams.
      await waitFor(async () => (await page.locator('#log .entry--token').count()) >= 2, 'a refreshed token', 10000);
      await waitFor(async () => (await page.locator('#log .entry--connected').count()) >= 3, 'the stream after the refresh', 10000);
      assert.equal(await page.locator('#log .entry--gap').count(), 0);
      // Chromium itself logs the cut stream (net::ERR_...); the page must log nothing else.
      assert.deepEqual(errors.filter((e) => !/net::ERR_/.test(e)), []);
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'console-reconnect.png') });
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('the server\'s `expired` event is shown, and the page resumes with a new token', async () => {
    // With the page's clock a minute behind, the helper believes the token still has time and the
    // server expires it first.
    const { context, page } = await openConsole(server.origin, { clockBehindMs: 60000 });
    try {
      await enterKey(page);
      await subscribeIn(page, 'expiry-chan', { ttl: 2 });
      await page.locator('#log .entry--expired').first().waitFor({ timeout: 10000 });
      assert.match(await page.locator('#log .entry--expired').first().textContent(), /token_expired/);
      await waitFor(async () => (await page.locator('#log .entry--connected').count()) >= 2, 'the stream after expiry', 10000);
      const r = await publish(server, 'expiry-chan', 'after.expiry', { ok: true });
      await page.locator(`#log .entry--event[data-id="${r.messageId}"]`).waitFor();
    } finally {
      await context.close();
    }
  });

  it('a wrong key gets nowhere, and the key is kept only where the person asks', async () => {
    const { context, page, requests } = await openConsole(server.origin);
    try {
      await enterKey(page, 'cb_wrong_key_0123456789abcdef');
      await page.fill('#sub-channels', 'nope');
      await page.click('#subscribe');
      await page.locator('#log .entry--error').first().waitFor();
      assert.match(await page.locator('#log .entry--error').first().textContent(), /401|unauthorized|API key/i);
      await waitFor(async () => (await page.locator('.sub .pill').textContent()) === 'closed', 'the closed pill');
      assert.equal(requests.filter((u) => u.includes('/push/stream')).length, 0, 'no stream without a token');

      await page.fill('#pub-channel', 'nope');
      await page.click('#publish');
      await page.waitForSelector('#publish-result.is-error');
      assert.match(await page.textContent('#publish-result'), /401|unauthorized|API key/i);

      // sessionStorage only when ticked; the key comes back after a reload; "Forget" clears it.
      await enterKey(page);
      assert.equal(await page.evaluate(() => sessionStorage.length), 0);
      await page.check('#remember-key');
      assert.equal(await page.evaluate(() => Object.values(sessionStorage).join()), server.key);
      await page.reload();
      await page.waitForSelector('#server-origin:not(:empty)');
      assert.equal(await page.inputValue('#api-key'), server.key);
      await page.click('#forget-key');
      assert.equal(await page.evaluate(() => sessionStorage.length), 0);
      assert.equal(await page.inputValue('#api-key'), '');
      assert.equal(await page.evaluate(() => document.cookie), '');
      assert.ok(!page.url().includes(server.key));
    } finally {
      await context.close();
    }
  });

  it('publish data is validated in the page before anything is sent', async () => {
    const { context, page, requests } = await openConsole(server.origin);
    try {
      await enterKey(page);
      await page.fill('#pub-channel', 'v');
      await page.fill('#pub-data', '{"broken": ');
      assert.equal(await page.getAttribute('#pub-data', 'aria-invalid'), 'true');
      assert.match(await page.textContent('#pub-data-status'), /^Invalid/);
      await page.click('#publish');
      assert.match(await page.textContent('#publish-result'), /Fix the data/);
      await page.fill('#pub-data', '[1, 2]');
      assert.match(await page.textContent('#pub-data-status'), /must be a JSON object/);
      await page.fill('#pub-data', '{"fine": true}');
      assert.equal(await page.getAttribute('#pub-data', 'aria-invalid'), 'false');
      assert.equal(requests.filter((u) => u.endsWith('/push/publish')).length, 0);
    } finally {
      await context.close();
    }
  });

  it('is usable from the keyboard', async () => {
    const { context, page } = await openConsole(server.origin);
    try {
      // Every form control has a label.
      const unlabeled = await page.evaluate(() =>
        [...document.querySelectorAll('input, textarea, select')]
          .filter((el) => !el.labels?.length && !el.getAttribute('aria-label'))
          .map((el) => el.id),
      );
      assert.deepEqual(unlabeled, []);

      await page.focus('#api-key');
      await page.keyboard.type(server.key);
      await page.focus('#sub-channels');
      await page.keyboard.type('kbd');
      await page.keyboard.press('Enter'); // submits the subscribe form
      await page.locator('#log .entry--connected').first().waitFor();

      await page.focus('#tab-curl-publish');
      await page.keyboard.press('ArrowRight');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-curl-subscribe');
      assert.equal(await page.getAttribute('#tab-curl-subscribe', 'aria-selected'), 'true');
      await page.keyboard.press('End');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-dart');
      const dart = await page.textContent('#snippet-code');
      assert.ok(dart.includes("const channels = ['kbd'];"));
      assert.ok(!/\bevent\.event\b/.test(dart), 'the spec sample bug (undefined `event`) must not be copied');
    } finally {
      await context.close();
    }
  });

  it('the EventSource example in docs/clients.md resumes across drops and token expiry', async () => {
    const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/clients.md'), 'utf8');
    const block = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes('new EventSource'));
    assert.ok(block, 'docs/clients.md has an EventSource example');
    const proxy = await startProxy(server.port);
    const { context, page } = await openConsole(proxy.origin);
    let tokenCalls = 0;
    // The example asks "your backend" for a token at /api/push-token; play that backend here.
    await page.route(`${proxy.origin}/api/push-token`, async (route) => {
      tokenCalls++;
      const t = await issueToken(server, ['es-chan'], { ttlSeconds: 3 });
      await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(t) });
    });
    try {
      const code = block
        .replace(/const BASE_URL = .*;/, `const BASE_URL = ${JSON.stringify(proxy.origin)};`)
        .replace(/const EVENT_NAMES = .*;/, "const EVENT_NAMES = ['tick'];");
      await page.evaluate(`(() => {
        ${code}
        window.__got = [];
        window.__gaps = [];
        window.__stop = subscribe((name, data, id) => window.__got.push(data.n), (info) => window.__gaps.push(info));
      })()`);
      const got = () => page.evaluate(() => window.__got);
      await waitFor(async () => proxy.open > 0, 'the EventSource connection');
      await sleep(300);
      await publish(server, 'es-chan', 'tick', { n: 0 });
      await waitFor(async () => (await got()).length === 1, 'the first event');

      // A network drop: the browser reconnects by itself, sending Last-Event-ID.
      proxy.refuse(true);
      proxy.dropAll();
      await publish(server, 'es-chan', 'tick', { n: 1 });
      await sleep(200);
      proxy.refuse(false);
      await waitFor(async () => (await got()).length === 2, 'the event missed during the drop', 15000);

      // Token expiry (TTL 3 s): `expired`, a new token, lastEventId in the query.
      for (let n = 2; n < 60; n++) {
        await publish(server, 'es-chan', 'tick', { n });
        await sleep(100);
      }
      await waitFor(async () => (await got()).length >= 60, 'all 60 events', 15000);
      await sleep(200);
      assert.deepEqual(await got(), [...Array(60).keys()]);
      assert.ok(tokenCalls >= 2, `token fetched ${tokenCalls} times`);
      assert.deepEqual(await page.evaluate(() => window.__gaps), []);
      await page.evaluate(() => window.__stop());
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('the client helper parses split streams the same in Chromium', async () => {
    const { context, page } = await openConsole(server.origin);
    try {
      const result = await page.evaluate(async () => {
        const { SseParser } = await import('/console/castbrick-push.js');
        const text = 'id: 1\r\nevent: a\r\ndata: ação 😀\r\ndata: two\r\r: c\n\nid: x\u0000\ndata: b\n\n';
        const bytes = new TextEncoder().encode(text);
        const outputs = new Set();
        for (let cut = 1; cut < bytes.length; cut++) {
          const got = [];
          const parser = new SseParser((m) => got.push([m.event, m.data, m.lastEventId]));
          const decoder = new TextDecoder();
          parser.feed(decoder.decode(bytes.subarray(0, cut), { stream: true }));
          parser.feed(decoder.decode(bytes.subarray(cut), { stream: true }));
          outputs.add(JSON.stringify(got));
        }
        return [...outputs];
      });
      assert.deepEqual(result, [JSON.stringify([['a', 'ação 😀\ntwo', '1'], ['message', 'b', '1']])]);
    } finally {
      await context.close();
    }
  });
});
