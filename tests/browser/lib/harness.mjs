// Shared test harness: the real server binary on an ephemeral loopback port, a TCP proxy that can
// cut streams, an API helper, headless Chromium, and the loud-skip policy.
//
// A test whose prerequisites are missing (server binary, node_modules, chromium, curl) is SKIPPED
// with a banner on stderr, unless CASTBRICK_REQUIRE_ALL=1, in which case it fails.
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SERVER_BIN = path.resolve(REPO_ROOT, process.env.CASTBRICK_BIN || 'target/debug/castbrick-push');
export const CHROMIUM = process.env.CASTBRICK_CHROMIUM || '/usr/bin/chromium';
export const REQUIRE_ALL = process.env.CASTBRICK_REQUIRE_ALL === '1';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Prerequisites and the skip policy

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export function missingServer() {
  return isExecutable(SERVER_BIN)
    ? null
    : `server binary not found at ${SERVER_BIN} (run \`cargo build\` in the repo root, or set CASTBRICK_BIN)`;
}

export function missingChromium() {
  return isExecutable(CHROMIUM) ? null : `chromium not found at ${CHROMIUM} (apt-get install -y chromium)`;
}

let playwright = null;
let playwrightError = null;
try {
  playwright = await import('playwright-core');
} catch (err) {
  playwrightError = err;
}

export function missingPlaywright() {
  return playwright ? null : `playwright-core is not installed (run \`npm ci\` in tests/browser): ${playwrightError.message}`;
}

export function missingCommand(name) {
  const dirs = (process.env.PATH || '').split(path.delimiter);
  return dirs.some((d) => d && isExecutable(path.join(d, name))) ? null : `\`${name}\` not found on PATH (apt-get install -y ${name})`;
}

const warned = new Set();

/**
 * `gate(missingServer(), missingChromium())` -> `{ skip, check }`. Pass `skip` as the test's
 * option and call `check()` first thing in the test: with CASTBRICK_REQUIRE_ALL=1 a missing
 * prerequisite fails the test instead of skipping it.
 */
export function gate(...reasons) {
  const missing = reasons.filter(Boolean);
  if (missing.length === 0) return { skip: false, check() {} };
  const why = missing.join('; ');
  if (REQUIRE_ALL) {
    return {
      skip: false,
      check() {
        throw new Error(`prerequisite missing and CASTBRICK_REQUIRE_ALL=1: ${why}`);
      },
    };
  }
  if (!warned.has(why)) {
    warned.add(why);
    process.stderr.write(`\n${'!'.repeat(78)}\n!!! SKIPPING browser/client tests: ${why}\n!!! (set CASTBRICK_REQUIRE_ALL=1 to make this a failure)\n${'!'.repeat(78)}\n\n`);
  }
  return { skip: `SKIPPED: ${why}`, check() {} };
}

/** `node:test`'s test(), skipped (or failed, with CASTBRICK_REQUIRE_ALL=1) as `g` says. */
export function gatedTest(g) {
  return (name, fn, options = {}) =>
    test(name, { ...options, skip: g.skip }, async (t) => {
      g.check();
      await fn(t);
    });
}

// ---------------------------------------------------------------------------------------------
// The server

/**
 * Starts the server binary on 127.0.0.1:0 with a random API key, signing secret and data dir.
 * Resolves to { origin, port, key, output(), stop() }; the origin comes from the start banner's
 * `listening on http://127.0.0.1:PORT` line.
 */
export async function startServer({ env = {}, args = [] } = {}) {
  const key = `cb_test_${crypto.randomBytes(16).toString('hex')}`;
  const secret = crypto.randomBytes(24).toString('hex'); // 48 characters
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'castbrick-browser-'));
  const child = spawn(SERVER_BIN, ['--listen', '127.0.0.1:0', ...args], {
    env: {
      ...process.env,
      CASTBRICK_API_KEYS: key,
      CASTBRICK_SIGNING_SECRETS: secret,
      CASTBRICK_DATA_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = null;
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve((exited = { code, signal }))));
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server printed no "listening on" line in 20 s.\nstdout:\n${stdout}\nstderr:\n${stderr}`)), 20000);
    const look = () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', (d) => {
      stdout += d;
      look();
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal}).\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    });
  });
  const port = Number(new URL(origin).port);
  return {
    origin,
    port,
    key,
    output: () => ({ stdout, stderr }),
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const done = await Promise.race([exit, sleep(5000).then(() => null)]);
        if (!done) {
          child.kill('SIGKILL');
          await exit;
        }
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** POST with the API key; resolves to { status, body } (body parsed as JSON when possible). */
export async function post(server, urlPath, body, { key = server.key } = {}) {
  const res = await fetch(`${server.origin}${urlPath}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: res.status, body: parsed };
}

export async function issueToken(server, channels, extra = {}) {
  const r = await post(server, '/push/tokens', { channels, ...extra });
  if (r.status !== 200) throw new Error(`POST /push/tokens -> ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function publish(server, channel, event, data) {
  const r = await post(server, '/push/publish', { channel, event, data });
  if (r.status !== 200) throw new Error(`POST /push/publish -> ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor(fn, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

// ---------------------------------------------------------------------------------------------
// A loopback TCP proxy that can drop every connection, and refuse new ones for a while: the
// client sees exactly what it sees when the server or the network cuts a stream.

export async function startProxy(targetPort) {
  const pairs = new Set();
  let refusing = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    /** Cuts every open connection (both directions, no goodbye). */
    dropAll() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    refuse(on) {
      refusing = on;
    },
    async close() {
      this.dropAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Chromium

export async function launchChromium() {
  return playwright.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60000,
  });
}

/**
 * Where the Console screenshots go: CASTBRICK_SCREENSHOT_DIR (relative to the repo root), or a
 * temporary folder so that a test run leaves the committed docs/console-*.png alone. Refresh
 * the docs with CASTBRICK_SCREENSHOT_DIR=docs.
 */
export const SCREENSHOT_DIR = process.env.CASTBRICK_SCREENSHOT_DIR
  ? path.resolve(REPO_ROOT, process.env.CASTBRICK_SCREENSHOT_DIR)
  : path.join(os.tmpdir(), 'castbrick-console-screenshots');
