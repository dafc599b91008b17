// SseParser against the WHATWG "Parsing an event stream" rules. Pure: no server, no browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../clients/js/castbrick-push.js';

/** Parses `input` (string or Uint8Array) fed in the given chunks; returns messages and retry values. */
function parse(input, { chunks = null, lastEventId = '' } = {}) {
  const messages = [];
  const retries = [];
  const parser = new SseParser((m) => messages.push(m), { lastEventId, onRetry: (ms) => retries.push(ms) });
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const decoder = new TextDecoder('utf-8');
  const cuts = chunks ?? [bytes.length];
  let at = 0;
  for (const end of [...cuts, bytes.length]) {
    parser.feed(decoder.decode(bytes.subarray(at, end), { stream: true }));
    at = Math.max(at, end);
  }
  parser.feed(decoder.decode());
  parser.end();
  return { messages, retries, lastEventId: parser.lastEventId };
}

const simple = (ms) => ms.map((m) => [m.event, m.data, m.id]);

test('LF, CR and CRLF line ends are all line ends', () => {
  for (const eol of ['\n', '\r', '\r\n']) {
    const { messages } = parse(`event: a${eol}data: 1${eol}${eol}data: 2${eol}${eol}`);
    assert.deepEqual(simple(messages), [['a', '1', null], ['message', '2', null]], JSON.stringify(eol));
  }
});

test('mixed line ends in one stream', () => {
  const { messages } = parse('data: a\rdata: b\r\ndata: c\n\r\n');
  assert.deepEqual(simple(messages), [['message', 'a\nb\nc', null]]);
});

test('multi-line data is joined with LF, and the trailing LF is removed', () => {
  const { messages } = parse('data: line one\ndata:line two\ndata\ndata:   three\n\n');
  assert.deepEqual(messages[0].data, 'line one\nline two\n\n  three');
});

test('exactly one space after the colon is stripped', () => {
  const { messages } = parse('data:  two spaces\n\ndata:none\n\n');
  assert.deepEqual(messages.map((m) => m.data), [' two spaces', 'none']);
});

test('comments are ignored, and do not end an event', () => {
  const { messages } = parse(': heartbeat\n\n:\ndata: x\n: inside\ndata: y\n\n');
  assert.deepEqual(simple(messages), [['message', 'x\ny', null]]);
});

test('a field without a colon has an empty value; unknown fields are ignored', () => {
  const { messages } = parse('data\n\nevent\ndata: a\n\nfoo: bar\ndata : not data\nDATA: no\ndata: z\n\n');
  assert.deepEqual(simple(messages), [['message', '', null], ['message', 'a', null], ['message', 'z', null]]);
});

test('an event with no data is not dispatched, and its event type does not leak', () => {
  const { messages } = parse('event: lonely\n\ndata: next\n\n');
  assert.deepEqual(simple(messages), [['message', 'next', null]]);
});

test('ids persist across events; an id containing NUL is ignored', () => {
  const { messages, lastEventId } = parse('id: 1\ndata: a\n\ndata: b\n\nid: 2\u0000x\ndata: c\n\nid: 3\ndata: d\n\n');
  assert.deepEqual(
    messages.map((m) => [m.data, m.id, m.lastEventId]),
    [['a', '1', '1'], ['b', null, '1'], ['c', null, '1'], ['d', '3', '3']],
  );
  assert.equal(lastEventId, '3');
});

test('an id-only block moves the last event id without dispatching; an empty id clears it', () => {
  let r = parse('id: 7\n\n');
  assert.equal(r.messages.length, 0);
  assert.equal(r.lastEventId, '7');
  r = parse('id\ndata: a\n\n', { lastEventId: '5' });
  assert.equal(r.messages[0].lastEventId, '');
});

test('the initial last event id (the one we resumed from) survives events without ids', () => {
  const { messages, lastEventId } = parse('event: connected\ndata: {"channels":["a"]}\n\n', { lastEventId: 'abc' });
  assert.equal(messages[0].id, null);
  assert.equal(messages[0].lastEventId, 'abc');
  assert.equal(lastEventId, 'abc');
});

test('an unterminated event at the end of the stream is discarded', () => {
  const { messages } = parse('data: done\n\ndata: half');
  assert.deepEqual(simple(messages), [['message', 'done', null]]);
  assert.equal(parse('data: x\n').messages.length, 0);
});

test('retry takes ASCII digits only', () => {
  assert.deepEqual(parse('retry: 2500\n\nretry: 1.5\nretry: -1\nretry: 10x\nretry:\n\n').retries, [2500]);
});

test('a CR at the end of one chunk and an LF at the start of the next are one line end', () => {
  const text = 'data: a\r\ndata: b\r\n\r\n';
  const bytes = new TextEncoder().encode(text);
  const cut = text.indexOf('\r') + 1;
  const { messages } = parse(bytes, { chunks: [cut] });
  assert.deepEqual(simple(messages), [['message', 'a\nb', null]]);
  // ...but a CR then a lone LF in the next chunk after a real line is still a blank line.
  assert.deepEqual(simple(parse(new TextEncoder().encode('data: a\r\r\n'), { chunks: [8] }).messages), [['message', 'a', null]]);
});

test('every split point, including inside multi-byte UTF-8, gives the same events', () => {
  const text =
    '\uFEFFid: 0190f5b2-7c1e-7a3b-8c4d-1234567890ab\r\nevent: pedido.criado\r\ndata: {"cliente":"João","nota":"😀 ação"}\r\n\r\n' +
    ': heartbeat\n\nevent: x\rdata: 日本語\rdata: ok\r\r' +
    'data: last\n\n';
  const bytes = new TextEncoder().encode(text);
  const expected = parse(bytes).messages;
  assert.deepEqual(simple(expected), [
    ['pedido.criado', '{"cliente":"João","nota":"😀 ação"}', '0190f5b2-7c1e-7a3b-8c4d-1234567890ab'],
    ['x', '日本語\nok', null],
    ['message', 'last', null],
  ]);
  for (let i = 1; i < bytes.length; i++) {
    assert.deepEqual(parse(bytes, { chunks: [i] }).messages, expected, `split at byte ${i}`);
    for (let j = i + 1; j < bytes.length; j += 7) {
      assert.deepEqual(parse(bytes, { chunks: [i, j] }).messages, expected, `split at bytes ${i} and ${j}`);
    }
  }
  // One byte at a time.
  assert.deepEqual(parse(bytes, { chunks: [...bytes.keys()].slice(1) }).messages, expected);
});
