// The JavaScript (browser) client from the product spec, run under Node 18+ (global fetch).
// Only the base URL is a parameter; the optional Last-Event-ID follows the spec's
// "Reconnection" snippet. Everything from `const reader` on is the spec's code, unchanged.
//
//   node spec_client.mjs <base-url> <token> [last-event-id]
const [base, token, lastSeenId] = process.argv.slice(2);

const res = await fetch(
  `${base}/push/stream?token=${encodeURIComponent(token)}`,
  lastSeenId ? { headers: { 'Last-Event-ID': lastSeenId } } : undefined
);
const reader = res.body.getReader();
const decoder = new TextDecoder();
let buffer = '';
while (true) {
  const { value, done } = await reader.read();
  if (done) break;
  buffer += decoder.decode(value, { stream: true });
  const messages = buffer.split('\n\n');
  buffer = messages.pop() ?? '';
  for (const msg of messages) {
    let eventName = 'message';
    let dataLine = '';
    for (const line of msg.split('\n')) {
      if (line.startsWith('event:')) eventName = line.slice(6).trim();
      if (line.startsWith('data:')) dataLine = line.slice(5).trim();
    }
    if (dataLine) {
      const data = JSON.parse(dataLine);
      console.log(eventName, data);
    }
  }
}
