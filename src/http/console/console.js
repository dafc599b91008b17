// CastBrick Push Developer Console. Talks only to the server that serves it (location.origin).
// The API key lives in `state.key` (and in sessionStorage only when the person asks for it); it
// goes out only in the Authorization header of /push/tokens and /push/publish.
import { connect } from '/console/castbrick-push.js';

const ORIGIN = location.origin;
const KEY_STORAGE = 'castbrick-push.console.apiKey';
const MAX_LOG_ENTRIES = 500;

const $ = (id) => document.getElementById(id);

const state = {
  key: '',
  subs: new Map(), // id -> { id, channels, client, row }
  nextSubId: 1,
  snippet: 'curl-publish',
  logCount: 0,
};

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// API

async function api(path, body) {
  if (!state.key) throw new ApiError('Enter an API key first.', 0, 'no_key');
  let res;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { Authorization: `Bearer ${state.key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    throw new ApiError(`Network error: ${err.message}`, 0, 'network');
  }
  let payload = null;
  try {
    payload = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const e = payload && payload.error;
    const message = e ? `${e.code}: ${e.message}` : `HTTP ${res.status}`;
    throw new ApiError(res.status === 401 ? `${message} (check the API key)` : message, res.status, e && e.code);
  }
  return payload;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function parseChannels(text) {
  const seen = new Set();
  for (const c of text.split(/[\s,]+/)) if (c) seen.add(c);
  return [...seen];
}

function clock(date = new Date()) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}.${p(date.getMilliseconds(), 3)}`;
}

function pretty(value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null) continue;
    if (k === 'className') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function firstChannel() {
  for (const sub of state.subs.values()) if (sub.channels.length) return sub.channels[0];
  return '';
}

// ---------------------------------------------------------------------------------------------
// Live log

const LABELS = {
  event: 'event',
  connected: 'connected',
  gap: 'gap',
  expired: 'expired',
  reconnect: 'reconnect',
  token: 'token',
  error: 'error',
  closed: 'closed',
};

function log(kind, { name = null, sub = null, id = null, text = null, data = undefined } = {}) {
  const now = new Date();
  const meta = el(
    'div',
    { className: 'entry__meta' },
    el('time', { className: 'entry__time', datetime: now.toISOString(), text: clock(now) }),
    el('span', { className: 'badge', text: LABELS[kind] || kind }),
    name != null ? el('span', { className: 'entry__name', text: name }) : null,
    sub ? el('span', { className: 'entry__sub', text: `[${sub.channels.join(', ')}]` }) : null,
    id ? el('code', { className: 'entry__id', text: `id ${id}` }) : null,
  );
  const item = el(
    'li',
    { className: `entry entry--${kind}`, 'data-kind': kind, 'data-event': name, 'data-id': id },
    meta,
    text ? el('p', { className: 'entry__text', text }) : null,
    data !== undefined ? el('pre', { className: 'entry__data', text: pretty(data) }) : null,
  );
  const list = $('log');
  list.prepend(item);
  while (list.children.length > MAX_LOG_ENTRIES) list.lastElementChild.remove();
  state.logCount = list.children.length;
  $('live-count').textContent = `${state.logCount} ${state.logCount === 1 ? 'entry' : 'entries'}`;
}

// ---------------------------------------------------------------------------------------------
// API key

function setKey(value) {
  state.key = value.trim();
  if ($('remember-key').checked && state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
  renderSnippet();
}

function initKey() {
  const stored = sessionStorage.getItem(KEY_STORAGE);
  if (stored) {
    $('api-key').value = stored;
    $('remember-key').checked = true;
    state.key = stored;
  }
  $('api-key').addEventListener('input', (e) => setKey(e.target.value));
  $('key-form').addEventListener('submit', (e) => e.preventDefault());
  $('remember-key').addEventListener('change', (e) => {
    if (e.target.checked && state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
    if (!e.target.checked) sessionStorage.removeItem(KEY_STORAGE);
  });
  $('toggle-key').addEventListener('click', () => {
    const input = $('api-key');
    const show = input.type === 'password';
    input.type = show ? 'text' : 'password';
    $('toggle-key').textContent = show ? 'Hide' : 'Show';
    $('toggle-key').setAttribute('aria-pressed', String(show));
  });
  $('forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $('api-key').value = '';
    $('remember-key').checked = false;
    setKey('');
    $('api-key').focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

function renderSubs() {
  $('subs-empty').hidden = state.subs.size > 0;
}

function subscribe(channels, { userId, ttlSeconds, lastEventId }) {
  const sub = { id: state.nextSubId++, channels, client: null };
  const status = el('span', { className: 'pill pill--connecting', text: 'connecting' });
  const detail = el('span', { className: 'sub__detail', text: 'Issuing a token…' });
  const stop = el('button', {
    type: 'button',
    className: 'button button--quiet button--small',
    text: 'Unsubscribe',
    'aria-label': `Unsubscribe from ${channels.join(', ')}`,
  });
  sub.row = el(
    'li',
    { className: 'sub', 'data-sub': String(sub.id) },
    el('span', { className: 'sub__channels' }, channels.join(', '), status),
    stop,
    detail,
  );
  $('subscriptions').append(sub.row);
  state.subs.set(sub.id, sub);
  renderSubs();

  let tokenNote = '';
  const setStatus = (text, cls, more) => {
    status.textContent = text;
    status.className = `pill pill--${cls}`;
    if (more != null) detail.textContent = more;
  };

  sub.client = connect({
    baseUrl: ORIGIN,
    lastEventId: lastEventId || undefined,
    async getToken() {
      const body = { channels };
      if (userId) body.userId = userId;
      if (ttlSeconds) body.ttlSeconds = ttlSeconds;
      try {
        const t = await api('/push/tokens', body);
        log('token', { sub, text: `Token issued, expires at ${new Date(t.expiresAt).toLocaleString()}.` });
        tokenNote = `Token expires ${new Date(t.expiresAt).toLocaleTimeString()}`;
        detail.textContent = tokenNote;
        return t;
      } catch (err) {
        log('error', { sub, text: `Token request failed: ${err.message}` });
        // A rejected key or request will not get better by retrying: stop this subscription.
        if (err.status >= 400 && err.status < 500) return null;
        throw err; // network or server trouble: the helper retries with backoff
      }
    },
    onConnected(info) {
      const parts = [`channels ${(info.channels || channels).join(', ')}`];
      if ('replayed' in info) parts.push(`replayed ${info.replayed}`);
      if ('complete' in info) parts.push(`complete ${info.complete}`);
      log('connected', { name: 'connected', sub, text: parts.join(' · ') });
    },
    onGap(info) {
      log('gap', {
        sub,
        text: `Replay incomplete: events after ${info.lastEventId} may be missing. An application would refetch its state now.`,
      });
    },
    onExpired(info) {
      const why = info && info.reason ? ` (${info.reason})` : '';
      log('expired', { name: 'expired', sub, text: `Stream closed by the server${why}: fetching a new token and resuming.` });
    },
    onEvent(name, data, id) {
      log('event', { name, sub, id, data });
    },
    onStatus(s, d) {
      if (s === 'open') setStatus('open', 'open', tokenNote);
      else if (s === 'connecting') setStatus('connecting', 'connecting', null);
      else if (s === 'reconnecting') {
        const why = d.reason ? d.reason.replace(/_/g, ' ') : 'reconnect';
        const when = d.delayMs ? ` in ${(d.delayMs / 1000).toFixed(1)} s` : ' now';
        setStatus('reconnecting', 'reconnecting', `Reconnecting${when} (${why})`);
        const resume = d.lastEventId ? `, resuming after ${d.lastEventId}` : '';
        log('reconnect', { sub, text: `Stream ended (${why}); reconnecting${when}${resume}.` });
      } else if (s === 'closed') {
        setStatus('closed', 'closed', d.reason === 'no_token' ? 'Stopped: no token.' : 'Closed.');
      }
    },
    onError(err) {
      // HTTP and network errors are followed by a 'reconnecting' status; show the cause too.
      if (err && err.name === 'AbortError') return;
      if (err instanceof ApiError) return; // already logged by getToken above
      const message = String(err && err.message ? err.message : err);
      log('error', { sub, text: err && err.status ? message : `Connection problem: ${message}` });
    },
  });

  stop.addEventListener('click', () => {
    sub.client.close();
    state.subs.delete(sub.id);
    sub.row.remove();
    log('closed', { sub, text: 'Unsubscribed.' });
    renderSubs();
    $('sub-channels').focus();
  });
  return sub;
}

function initSubscribe() {
  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const error = $('sub-error');
    const input = $('sub-channels');
    const channels = parseChannels(input.value);
    let problem = null;
    if (!state.key) problem = 'Enter an API key first.';
    else if (!channels.length) problem = 'Enter at least one channel.';
    const ttlText = $('sub-ttl').value.trim();
    const ttlSeconds = ttlText === '' ? null : Number(ttlText);
    if (!problem && ttlSeconds !== null && !(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) {
      problem = 'The token TTL must be a whole number of seconds.';
    }
    error.hidden = !problem;
    error.textContent = problem || '';
    input.setAttribute('aria-invalid', String(Boolean(problem) && !channels.length));
    if (problem) {
      (state.key ? input : $('api-key')).focus();
      return;
    }
    subscribe(channels, {
      userId: $('sub-user').value.trim() || null,
      ttlSeconds,
      lastEventId: $('sub-resume').value.trim() || null,
    });
    if (!$('pub-channel').value.trim()) $('pub-channel').value = channels[0];
    if (!$('snip-channel').value.trim()) $('snip-channel').value = channels[0];
    renderSnippet();
  });
}

// ---------------------------------------------------------------------------------------------
// Publish

function validateData() {
  const area = $('pub-data');
  const status = $('pub-data-status');
  try {
    const value = JSON.parse(area.value);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error('data must be a JSON object, e.g. {"message": "hi"}');
    }
    area.setAttribute('aria-invalid', 'false');
    status.textContent = 'Valid JSON.';
    status.classList.remove('is-invalid');
    return { ok: true, value };
  } catch (err) {
    area.setAttribute('aria-invalid', 'true');
    status.textContent = `Invalid: ${err.message}`;
    status.classList.add('is-invalid');
    return { ok: false, error: err.message };
  }
}

function showPublishResult(content, isError) {
  const box = $('publish-result');
  box.replaceChildren(content);
  box.classList.toggle('is-error', isError);
}

function initPublish() {
  $('pub-data').addEventListener('input', () => {
    validateData();
    renderSnippet();
  });
  $('pub-event').addEventListener('input', renderSnippet);
  $('pub-channel').addEventListener('input', renderSnippet);
  $('format-data').addEventListener('click', () => {
    const r = validateData();
    if (r.ok) $('pub-data').value = JSON.stringify(r.value, null, 2);
  });
  $('publish-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const channel = $('pub-channel').value.trim();
    const event = $('pub-event').value.trim();
    const data = validateData();
    let problem = null;
    if (!state.key) problem = 'Enter an API key first.';
    else if (!channel) problem = 'Enter a channel.';
    else if (!event) problem = 'Enter an event name.';
    else if (!data.ok) problem = `Fix the data: ${data.error}`;
    $('pub-channel').setAttribute('aria-invalid', String(!channel));
    $('pub-event').setAttribute('aria-invalid', String(!event));
    if (problem) {
      showPublishResult(el('p', { text: problem }), true);
      if (!state.key) $('api-key').focus();
      else if (!channel) $('pub-channel').focus();
      else if (!event) $('pub-event').focus();
      else $('pub-data').focus();
      return;
    }
    const button = $('publish');
    button.setAttribute('aria-busy', 'true');
    try {
      const r = await api('/push/publish', { channel, event, data: data.value });
      showPublishResult(
        el(
          'dl',
          {},
          el('dt', { text: 'messageId' }),
          el('dd', { id: 'result-message-id', text: r.messageId }),
          el('dt', { text: 'delivered' }),
          el('dd', { id: 'result-delivered', text: String(r.delivered) }),
          el('dt', { text: 'published' }),
          el('dd', { text: `${event} → ${channel} at ${clock()}` }),
        ),
        false,
      );
    } catch (err) {
      showPublishResult(el('p', { text: `Publish failed: ${err.message}` }), true);
    } finally {
      button.removeAttribute('aria-busy');
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Snippets. Each one is a complete program or command that runs as pasted.

/** Single-quoted shell word. */
const sh = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
/** JavaScript string literal. */
const js = (s) => JSON.stringify(String(s));
/** Dart single-quoted string literal (no interpolation). */
const dart = (s) =>
  `'${String(s)
    .replace(/\\/g, '\\\\')
    .replace(/'/g, "\\'")
    .replace(/\$/g, '\\$')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')}'`;

function snippetInputs(reveal) {
  const channel = $('snip-channel').value.trim() || firstChannel() || $('pub-channel').value.trim() || 'orders';
  const event = $('pub-event').value.trim() || 'test.event';
  const parsed = (() => {
    try {
      const v = JSON.parse($('pub-data').value);
      return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
    } catch {
      return null;
    }
  })();
  const data = parsed || { message: 'Hello from curl' };
  let key = state.key || 'YOUR_API_KEY';
  if (!reveal && state.key) key = state.key.length > 12 ? `${state.key.slice(0, 8)}…${state.key.slice(-4)}` : '••••••••';
  return { origin: ORIGIN, key, channel, event, data };
}

const SNIPPETS = {
  'curl-publish': {
    caption: 'Publish one event with curl (any POSIX shell).',
    build: ({ origin, key, channel, event, data }) =>
      [
        `curl -sS -X POST ${sh(`${origin}/push/publish`)} \\`,
        `  -H ${sh(`Authorization: Bearer ${key}`)} \\`,
        `  -H 'Content-Type: application/json' \\`,
        `  -d ${sh(JSON.stringify({ channel, event, data }))}`,
      ].join('\n'),
  },
  'curl-subscribe': {
    caption: 'Issue a token, then watch the stream (Ctrl-C to stop). Needs curl and sed.',
    build: ({ origin, key, channel }) =>
      [
        `TOKEN=$(curl -sS -X POST ${sh(`${origin}/push/tokens`)} \\`,
        `  -H ${sh(`Authorization: Bearer ${key}`)} \\`,
        `  -H 'Content-Type: application/json' \\`,
        `  -d ${sh(JSON.stringify({ channels: [channel] }))} \\`,
        `  | sed -E 's/.*"token":"([^"]+)".*/\\1/')`,
        `curl -sS -N -H 'Accept: text/event-stream' "${origin}/push/stream?token=$TOKEN"`,
      ].join('\n'),
  },
  js: {
    caption: 'Node 18+ (save as subscribe.mjs, run node subscribe.mjs). Resumes with Last-Event-ID after a drop.',
    build: ({ origin, key, channel }) => `// CastBrick Push: print the events of one channel, resuming after drops.
// Server-side only: the API key must never reach a browser. In a web app, issue the token on
// your backend and use the client helper (${origin}/console/castbrick-push.js).
const BASE_URL = ${js(origin)};
const API_KEY = ${js(key)};
const CHANNELS = [${js(channel)}];

async function issueToken() {
  const res = await fetch(\`\${BASE_URL}/push/tokens\`, {
    method: 'POST',
    headers: { Authorization: \`Bearer \${API_KEY}\`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channels: CHANNELS }),
  });
  if (!res.ok) throw new Error(\`token request failed: \${res.status} \${await res.text()}\`);
  return res.json(); // { token, expiresAt, channels }
}

async function main() {
  let token = null;
  let lastEventId = '';
  let delayMs = 1000;
  for (;;) {
    try {
      if (!token || Date.parse(token.expiresAt) - Date.now() < 30000) token = await issueToken();
      const headers = { Accept: 'text/event-stream' };
      if (lastEventId) headers['Last-Event-ID'] = lastEventId; // the server replays what we missed
      const res = await fetch(\`\${BASE_URL}/push/stream?token=\${encodeURIComponent(token.token)}\`, { headers });
      if (res.status === 401 || res.status === 403) token = null;
      if (!res.ok) throw new Error(\`stream request failed: \${res.status}\`);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      let event = 'message';
      let data = [];
      let id = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const lines = buffer.split(/\\r\\n|\\r(?!$)|\\n/); // a CR at the very end may be half of a CRLF
        buffer = lines.pop();
        for (const line of lines) {
          if (line === '') {
            if (data.length) {
              const payload = JSON.parse(data.join('\\n'));
              if (id !== null) lastEventId = id;
              if (event === 'connected') {
                delayMs = 1000;
                if (payload.complete === false) console.log('gap: some events were missed, refetch your state');
              }
              if (event === 'expired') token = null; // the server closes the stream; reconnect with a new token
              console.log(event, id ?? '', JSON.stringify(payload));
            }
            event = 'message';
            data = [];
            id = null;
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            let val = colon < 0 ? '' : line.slice(colon + 1);
            if (val.startsWith(' ')) val = val.slice(1);
            if (field === 'event') event = val;
            else if (field === 'data') data.push(val);
            else if (field === 'id' && !val.includes('\\0')) id = val;
          }
        }
      }
    } catch (err) {
      console.error('stream error:', err.message);
    }
    const waitMs = delayMs / 2 + Math.random() * (delayMs / 2);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    delayMs = Math.min(delayMs * 2, 30000);
  }
}

main();
`,
  },
  dart: {
    caption: 'Dart 3 / Flutter on mobile and desktop (dart:io). Resumes with Last-Event-ID after a drop.',
    build: ({ origin, key, channel }) => `// CastBrick Push: print the events of one channel, resuming after drops.
// Server-side only: the API key must never ship inside an app. In an app, get the token from
// your backend instead of calling issueToken().
import 'dart:convert';
import 'dart:io';
import 'dart:math';

const baseUrl = ${dart(origin)};
const apiKey = ${dart(key)};
const channels = [${dart(channel)}];

Future<String> issueToken(HttpClient client) async {
  final request = await client.postUrl(Uri.parse('$baseUrl/push/tokens'));
  request.headers.set(HttpHeaders.authorizationHeader, 'Bearer $apiKey');
  request.headers.contentType = ContentType.json;
  request.write(jsonEncode({'channels': channels}));
  final response = await request.close();
  final body = await response.transform(utf8.decoder).join();
  if (response.statusCode != 200) {
    throw HttpException('token request failed: \${response.statusCode} $body');
  }
  return (jsonDecode(body) as Map<String, dynamic>)['token'] as String;
}

Future<void> main() async {
  final client = HttpClient();
  final random = Random();
  String? token;
  String? lastEventId;
  var delay = const Duration(seconds: 1);
  while (true) {
    try {
      final current = token ??= await issueToken(client);
      final uri = Uri.parse('$baseUrl/push/stream').replace(queryParameters: {'token': current});
      final request = await client.getUrl(uri);
      request.headers.set(HttpHeaders.acceptHeader, 'text/event-stream');
      final resumeFrom = lastEventId;
      if (resumeFrom != null) {
        request.headers.set('Last-Event-ID', resumeFrom); // the server replays what we missed
      }
      final response = await request.close();
      if (response.statusCode != 200) {
        if (response.statusCode == 401 || response.statusCode == 403) token = null;
        await response.drain<void>();
        throw HttpException('stream request failed: \${response.statusCode}');
      }
      var eventName = 'message';
      final data = <String>[];
      String? id;
      final lines = response.transform(utf8.decoder).transform(const LineSplitter());
      await for (final line in lines) {
        if (line.isEmpty) {
          if (data.isNotEmpty) {
            final payload = jsonDecode(data.join('\\n'));
            if (id != null) lastEventId = id;
            if (eventName == 'connected') {
              delay = const Duration(seconds: 1);
              if (payload is Map && payload['complete'] == false) {
                print('gap: some events were missed, refetch your state');
              }
            }
            if (eventName == 'expired') token = null; // reconnect with a new token
            print('$eventName \${id ?? ''} \${jsonEncode(payload)}');
          }
          eventName = 'message';
          data.clear();
          id = null;
          continue;
        }
        if (line.startsWith(':')) continue; // comment, e.g. the heartbeat
        final colon = line.indexOf(':');
        final field = colon < 0 ? line : line.substring(0, colon);
        var value = colon < 0 ? '' : line.substring(colon + 1);
        if (value.startsWith(' ')) value = value.substring(1);
        if (field == 'event') {
          eventName = value;
        } else if (field == 'data') {
          data.add(value);
        } else if (field == 'id' && !value.contains('\\u0000')) {
          id = value;
        }
      }
    } catch (error) {
      stderr.writeln('stream error: $error');
    }
    await Future<void>.delayed(delay * (0.5 + random.nextDouble() / 2));
    delay = delay * 2 > const Duration(seconds: 30) ? const Duration(seconds: 30) : delay * 2;
  }
}
`,
  },
};

function renderSnippet() {
  const spec = SNIPPETS[state.snippet];
  $('snippet-caption').textContent = spec.caption;
  $('snippet-code').textContent = spec.build(snippetInputs($('snip-reveal').checked));
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      /* fall back below */
    }
  }
  const area = el('textarea', { readonly: '', 'aria-hidden': 'true' });
  area.value = text;
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

function selectTab(tab, focus) {
  for (const t of document.querySelectorAll('#snippet-tabs [role="tab"]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
  }
  $('snippet-panel').setAttribute('aria-labelledby', tab.id);
  state.snippet = tab.dataset.snippet;
  $('copy-status').textContent = '';
  renderSnippet();
  if (focus) tab.focus();
}

function initSnippets() {
  const tabs = [...document.querySelectorAll('#snippet-tabs [role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener('click', () => selectTab(tab, false));
    tab.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (e.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
      else if (e.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (e.key === 'Home') next = tabs[0];
      else if (e.key === 'End') next = tabs[tabs.length - 1];
      if (next) {
        e.preventDefault();
        selectTab(next, true);
      }
    });
  }
  $('snip-channel').addEventListener('input', renderSnippet);
  $('snip-reveal').addEventListener('change', renderSnippet);
  $('copy-snippet').addEventListener('click', async () => {
    const text = SNIPPETS[state.snippet].build(snippetInputs(true));
    const ok = await copyText(text);
    $('copy-status').textContent = ok ? 'Copied to the clipboard.' : 'Copy failed: select the text and copy it by hand.';
  });
  renderSnippet();
}

// ---------------------------------------------------------------------------------------------

function init() {
  $('server-origin').textContent = ORIGIN;
  $('clear-log').addEventListener('click', () => {
    $('log').replaceChildren();
    state.logCount = 0;
    $('live-count').textContent = '0 entries';
  });
  initKey();
  initSubscribe();
  initPublish();
  initSnippets();
  renderSubs();
  validateData();
  window.addEventListener('pagehide', () => {
    for (const sub of state.subs.values()) sub.client.close();
  });
}

init();
