// CastBrick Push client helper: a dependency-free ES module for browsers and Node 20+.
//
//   import { connect } from './castbrick-push.js';
//   const sub = connect({
//     baseUrl: 'https://push.example.com',
//     getToken: async () => (await fetch('/my-backend/push-token')).json(), // -> { token, expiresAt }
//     onEvent(name, data, id) { ... },
//     onGap(info) { /* replay was incomplete: refetch state */ },
//   });
//   sub.close();
//
// The full API, and why each choice was made, is in docs/clients.md. In short:
// - the stream is opened with fetch and parsed by SseParser, which follows the WHATWG
//   "event stream" rules (CR, LF and CRLF line ends, multi-line data, comments, `id` containing
//   NUL ignored, chunks split anywhere, UTF-8 decoded with TextDecoder in streaming mode);
// - the id of the last event is kept and sent as `Last-Event-ID` on every reconnect, so the server
//   replays what was missed; reconnects back off exponentially with jitter;
// - the token comes from the application's `getToken()`: at start, shortly before `expiresAt`, on
//   the server's `expired` event and after a 401/403 (never the same rejected token again);
// - a `connected` event with `complete: false` (the server could not replay everything since the
//   id we sent) is reported through `onGap` so the application can refetch its state.

const DEFAULTS = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 30000,
  idleTimeoutMs: 45000, // the server's heartbeat comment comes every 15 s by default
  refreshMarginMs: 30000,
});

const STREAM_PATH = '/push/stream';

/**
 * Incremental parser for a `text/event-stream` body (WHATWG HTML, "Server-sent events",
 * section "Parsing an event stream"). Feed it decoded text; it calls `onMessage` once per
 * dispatched event with `{ event, data, id, lastEventId }`:
 *   event        the `event` field, or "message" when there was none;
 *   data         the `data` lines joined with "\n";
 *   id           this event's own `id` field, or null when the event had none;
 *   lastEventId  the stream's last event id at dispatch (ids persist across events, as in EventSource).
 * `onRetry(ms)` is called for a valid `retry` field, `onComment(text)` for comment lines.
 */
export class SseParser {
  constructor(onMessage, { lastEventId = '', onRetry = null, onComment = null } = {}) {
    this.onMessage = onMessage;
    this.onRetry = onRetry;
    this.onComment = onComment;
    this.lastEventId = lastEventId;
    this._pending = ''; // an unterminated line carried over from the previous chunk
    this._skipLF = false; // the previous chunk ended with CR: an LF starting this chunk ends no line
    this._resetEvent();
  }

  _resetEvent() {
    this._data = '';
    this._event = '';
    this._idBuffer = this.lastEventId;
    this._ownId = null;
  }

  /** Feeds decoded text (any split: mid-line, between CR and LF, ...). */
  feed(text) {
    let start = 0;
    if (this._skipLF && text.length > 0) {
      if (text.charCodeAt(0) === 10) start = 1;
      this._skipLF = false;
    }
    const n = text.length;
    for (let i = start; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this._pending + text.slice(start, i);
      this._pending = '';
      if (c === 13) {
        if (i + 1 < n) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this._skipLF = true;
        }
      }
      start = i + 1;
      this._line(line);
    }
    if (start < n) this._pending += text.slice(start);
  }

  /** End of stream: an event not yet terminated by a blank line is discarded, per the spec. */
  end() {
    this._pending = '';
    this._skipLF = false;
    this._resetEvent();
  }

  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) {
      if (this.onComment) this.onComment(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon !== -1) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this._event = value;
        break;
      case 'data':
        this._data += value + '\n';
        break;
      case 'id':
        if (!value.includes('\u0000')) {
          this._idBuffer = value;
          this._ownId = value;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value) && this.onRetry) this.onRetry(Number(value));
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  _dispatch() {
    this.lastEventId = this._idBuffer;
    if (this._data === '') {
      this._resetEvent();
      return;
    }
    const message = {
      event: this._event === '' ? 'message' : this._event,
      data: this._data.slice(0, -1),
      id: this._ownId,
      lastEventId: this.lastEventId,
    };
    this._resetEvent();
    this.onMessage(message);
  }
}

/** Parses `data` as JSON; returns the raw string when it is not JSON. */
function parseData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Milliseconds since the epoch for an `expiresAt` given as ISO string, Date or number (ms). */
function expiryMs(expiresAt) {
  if (expiresAt == null) return null;
  if (expiresAt instanceof Date) return expiresAt.getTime();
  if (typeof expiresAt === 'number') return expiresAt;
  const ms = Date.parse(String(expiresAt));
  return Number.isNaN(ms) ? null : ms;
}

function streamUrl(baseUrl) {
  let base = baseUrl;
  if (base == null || base === '') {
    if (typeof location === 'undefined') throw new TypeError('connect(): baseUrl is required outside a browser');
    base = location.origin;
  }
  return String(base).replace(/\/+$/, '') + STREAM_PATH;
}

class HttpError extends Error {
  constructor(status, body) {
    super(`stream request failed: HTTP ${status}${body ? ` ${body}` : ''}`);
    this.name = 'HttpError';
    this.status = status;
  }
}

/**
 * Opens a subscription and keeps it open until `close()`.
 *
 * Options (only `getToken` is required; see docs/clients.md):
 *   baseUrl           server origin, e.g. "https://push.example.com" (default: the page's origin)
 *   getToken()        async, returns { token, expiresAt } (or null/undefined to stop the subscription)
 *   lastEventId       resume from this id on the first connection
 *   onEvent(name, data, id, message)   a published event; data is parsed JSON
 *   onConnected(info) the `connected` event: { channels, replayed?, complete? }
 *   onGap(info)       `complete` was false: events since `info.lastEventId` may be missing
 *   onExpired(info)   the server's `expired` event (a fresh token is fetched automatically)
 *   onStatus(state, detail)  'connecting' | 'open' | 'reconnecting' | 'closed'
 *   onError(error)    non-fatal problems (HTTP errors, getToken failures, callback exceptions)
 *   initialDelayMs, maxDelayMs   reconnect backoff (defaults 500 ms and 30 s, with jitter)
 *   idleTimeoutMs     reconnect when nothing (not even a heartbeat) arrives this long; 0 disables
 *   refreshMarginMs   fetch a new token this long before expiresAt (capped at a fifth of the
 *                     token's lifetime); false to wait for the server's `expired` event instead
 *   lastEventIdIn     'header' (Last-Event-ID, default) or 'query' (lastEventId parameter: no CORS
 *                     preflight for cross-origin pages)
 *   fetch             a fetch implementation (default: globalThis.fetch)
 */
export function connect(options) {
  if (!options || typeof options.getToken !== 'function') {
    throw new TypeError('connect(): options.getToken must be a function returning { token, expiresAt }');
  }
  const opts = { ...DEFAULTS, ...options };
  const fetchImpl = opts.fetch || globalThis.fetch;
  if (typeof fetchImpl !== 'function') throw new TypeError('connect(): no fetch implementation available');
  const url = streamUrl(opts.baseUrl);

  let closed = false;
  let state = 'idle';
  let lastEventId = opts.lastEventId ? String(opts.lastEventId) : '';
  let token = null; // { token, expiresMs }
  let needToken = true;
  let retryMs = opts.initialDelayMs; // the server may change it with `retry:`
  let current = null; // { controller, reason } of the request in flight
  let refreshTimer = null;
  let refreshing = null;
  let wake = null; // resolves the backoff sleep early (close)

  const call = (name, ...args) => {
    const fn = opts[name];
    if (typeof fn !== 'function') return;
    try {
      fn(...args);
    } catch (err) {
      if (name !== 'onError') call('onError', err);
    }
  };

  const setState = (next, detail = {}) => {
    state = next;
    call('onStatus', next, detail);
  };

  const sleep = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const backoff = (attempt) => {
    const ceiling = Math.min(opts.maxDelayMs, retryMs * 2 ** Math.min(attempt, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2); // "equal jitter": [c/2, c]
  };

  const abortCurrent = (reason) => {
    if (current && !current.reason) {
      current.reason = reason;
      current.controller.abort();
    }
  };

  const clearRefresh = () => {
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    refreshTimer = null;
  };

  // Fetches a token; returns false when the application asked to stop (null token).
  const obtainToken = async () => {
    const t = await opts.getToken();
    if (t == null) return false;
    if (typeof t.token !== 'string' || t.token === '') throw new TypeError('getToken() returned no token');
    token = { token: t.token, expiresMs: expiryMs(t.expiresAt), receivedMs: Date.now() };
    needToken = false;
    return true;
  };

  // Proactive refresh: get the next token while the current stream keeps running, then swap
  // streams (the new one resumes from the last id, so nothing is lost in between).
  const scheduleRefresh = () => {
    clearRefresh();
    if (opts.refreshMarginMs === false || !token || token.expiresMs == null) return;
    const lifetime = token.expiresMs - token.receivedMs;
    const margin = Math.max(0, Math.min(opts.refreshMarginMs, lifetime / 5));
    const delay = Math.max(0, token.expiresMs - margin - Date.now());
    refreshTimer = setTimeout(refreshNow, Math.min(delay, 2 ** 31 - 1));
  };

  const refreshNow = (attempt = 0) => {
    refreshTimer = null;
    if (closed || refreshing) return;
    const before = token;
    refreshing = obtainToken()
      .then((ok) => {
        refreshing = null;
        if (closed) return;
        if (!ok) return stop('no_token');
        // Swap streams only for a token that lives longer; otherwise keep the stream and let the
        // server's `expired` event decide (no reconnect loop on a getToken() that lags behind).
        const longer = !before || before.expiresMs == null || token.expiresMs == null || token.expiresMs > before.expiresMs;
        if (longer) abortCurrent('refresh');
      })
      .catch((err) => {
        refreshing = null;
        if (closed) return;
        call('onError', err);
        // Keep the stream; try again while there is time. The server's `expired` event is the backstop.
        if (token && token.expiresMs != null && token.expiresMs - Date.now() > 1000) {
          refreshTimer = setTimeout(() => refreshNow(attempt + 1), Math.min(backoff(attempt), token.expiresMs - Date.now() - 500));
        }
      });
  };

  const stop = (reason) => {
    if (closed) return;
    closed = true;
    clearRefresh();
    abortCurrent('closed');
    if (wake) wake();
    setState('closed', { reason });
  };

  // Reads one response body to its end. Returns why the stream ended.
  const readStream = async (response, conn) => {
    let opened = false;
    let outcome = 'ended';
    let idleTimer = null;
    const armIdle = () => {
      if (!opts.idleTimeoutMs) return;
      if (idleTimer !== null) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => abortCurrent('idle'), opts.idleTimeoutMs);
    };
    const parser = new SseParser(
      (msg) => {
        if (conn.reason) return; // aborted in an earlier callback of the same chunk
        lastEventId = parser.lastEventId;
        // The server refuses to publish events named "connected" or "expired", so these names
        // are always its own control events (with or without an id line; an id still moves the
        // resume point, above).
        if (msg.event === 'connected') {
          const parsed = parseData(msg.data);
          const info = parsed && typeof parsed === 'object' ? parsed : {};
          opened = true;
          setState('open', { ...info });
          call('onConnected', info);
          if (info.complete === false) call('onGap', { ...info, lastEventId: conn.resumedFrom });
        } else if (msg.event === 'expired') {
          const info = parseData(msg.data);
          needToken = true;
          call('onExpired', info && typeof info === 'object' ? info : { reason: String(info) });
          outcome = 'expired';
          abortCurrent('expired');
        } else {
          call('onEvent', msg.event, parseData(msg.data), msg.id, msg);
        }
      },
      {
        lastEventId,
        onRetry: (ms) => {
          retryMs = Math.max(100, ms);
        },
      },
    );
    const reader = response.body.getReader();
    const decoder = new TextDecoder('utf-8');
    armIdle();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        armIdle();
        parser.feed(decoder.decode(value, { stream: true }));
        if (conn.reason) break; // events after the abort point were skipped: keep their ids unseen
        lastEventId = parser.lastEventId; // also takes ids of id-only blocks
      }
      if (!conn.reason) parser.feed(decoder.decode());
    } catch (err) {
      if (!conn.reason) {
        outcome = 'network';
        call('onError', err);
      }
    } finally {
      if (idleTimer !== null) clearTimeout(idleTimer);
      parser.end();
      try {
        reader.cancel().catch(() => {});
      } catch {
        /* already released */
      }
    }
    if (conn.reason && outcome !== 'expired') outcome = conn.reason;
    return { outcome, opened };
  };

  const run = async () => {
    let attempt = 0; // consecutive failures, drives the backoff
    setState('connecting', { lastEventId: lastEventId || null });
    while (!closed) {
      if (needToken || (token && token.expiresMs != null && token.expiresMs <= Date.now())) {
        try {
          if (!(await obtainToken())) return stop('no_token');
        } catch (err) {
          if (closed) return;
          call('onError', err);
          const delayMs = backoff(attempt++);
          setState('reconnecting', { attempt, delayMs, reason: 'token_error', error: err });
          await sleep(delayMs);
          continue;
        }
        if (closed) return;
      }
      scheduleRefresh();

      const conn = { controller: new AbortController(), reason: null, resumedFrom: lastEventId || null };
      current = conn;
      const startedMs = Date.now();
      const headers = { Accept: 'text/event-stream' };
      let target = `${url}?token=${encodeURIComponent(token.token)}`;
      if (lastEventId) {
        if (opts.lastEventIdIn === 'query') target += `&lastEventId=${encodeURIComponent(lastEventId)}`;
        else headers['Last-Event-ID'] = lastEventId;
      }

      let outcome;
      let retryAfterMs = 0;
      try {
        const response = await fetchImpl(target, { headers, cache: 'no-store', signal: conn.controller.signal });
        const type = response.headers.get('content-type') || '';
        if (response.ok && type.toLowerCase().startsWith('text/event-stream') && response.body) {
          const result = await readStream(response, conn);
          outcome = result.outcome;
          if (result.opened) attempt = 0;
        } else {
          let body = '';
          try {
            body = (await response.text()).slice(0, 300);
          } catch {
            /* ignore */
          }
          const err = new HttpError(response.status, body);
          call('onError', err);
          outcome = `http_${response.status}`;
          if (response.status === 401 || response.status === 403) needToken = true;
          const ra = Number(response.headers.get('retry-after'));
          if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
        }
      } catch (err) {
        outcome = conn.reason || 'network';
        if (!conn.reason) call('onError', err);
      }
      current = null;
      if (closed) return;

      // A new token (or the promise of one): reconnect at once, resuming from the last id. After an
      // `expired` on a stream younger than a second, back off instead: a getToken() that hands out
      // stale tokens must not make us spin.
      if (outcome === 'refresh' || (outcome === 'expired' && Date.now() - startedMs >= 1000)) {
        setState('reconnecting', { attempt, delayMs: 0, reason: outcome, lastEventId: lastEventId || null });
        continue;
      }
      const delayMs = Math.max(backoff(attempt++), retryAfterMs);
      setState('reconnecting', { attempt, delayMs, reason: outcome, lastEventId: lastEventId || null });
      await sleep(delayMs);
    }
  };

  // Started on a microtask so that callbacks never run before connect() has returned.
  Promise.resolve().then(run).catch((err) => {
    call('onError', err);
    stop('error');
  });

  return {
    /** Stops the subscription for good. */
    close() {
      stop('closed');
    },
    /** The id of the last event received; sent as Last-Event-ID on reconnect. */
    get lastEventId() {
      return lastEventId;
    },
    /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
    get state() {
      return state;
    },
  };
}
