// The npm graphql-sse client (distinct connections) against the hub: a subscription receives
// 100 events in order and is released when the client disposes of it; a query completes; the
// event ids of the raw stream are the broker's positions, also with a Last-Event-ID header.
import { createClient } from 'graphql-sse';
import { hub, fail, waitMetric, publish, expectEqual } from './harness.mjs';

const client = createClient({ url: `${hub}/graphql`, retryAttempts: 0 });
const query = 'subscription($topic: String!) { events(topic: $topic) { id payload } }';

// A subscription: 100 events in order.
const received = [];
const ended = new Promise((resolve, reject) => {
  const dispose = client.subscribe(
    { query, variables: { topic: 'sse.js' } },
    {
      next: (result) => {
        received.push(result.data.events.payload.n);
        if (received.length === 100) dispose();
      },
      error: reject,
      complete: resolve,
    },
  );
});
await waitMetric('subhub_subscriptions', 1);
for (let n = 0; n < 100; n++) await publish('sse.js', { n });
await ended.catch((error) => fail(`the subscription failed: ${error}`));
expectEqual(received, [...Array(100).keys()], 'events in order');
await waitMetric('subhub_subscriptions', 0);
console.log('graphql-sse: 100 events in order, released on dispose');

// A query completes by itself.
const results = [];
for await (const result of client.iterate({ query: '{ brokers { name } }' })) results.push(result);
expectEqual(results, [{ data: { brokers: [{ name: 'local' }] } }], 'query over SSE');
console.log('graphql-sse: a query completes');

// The raw stream: each event's id is its position in the broker.
const controller = new AbortController();
const url = `${hub}/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent('{"topic":"sse.ids"}')}`;
const response = await fetch(url, {
  headers: { accept: 'text/event-stream', 'last-event-id': '0' },
  signal: controller.signal,
});
if (!response.ok) fail(`raw SSE answered ${response.status}`);
await waitMetric('subhub_subscriptions', 1);
for (let n = 0; n < 3; n++) await publish('sse.ids', { n });
const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
let text = '';
const events = [];
while (events.length < 3) {
  const { value, done } = await reader.read();
  if (done) fail('the raw stream ended');
  text += value;
  let end;
  while ((end = text.indexOf('\n\n')) >= 0) {
    const block = text.slice(0, end);
    text = text.slice(end + 2);
    if (block.startsWith(':')) continue;
    const field = (name) => block.split('\n').find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
    events.push({ id: field('id'), data: JSON.parse(field('data')) });
  }
}
for (const event of events) expectEqual(event.id, event.data.data.events.id, 'SSE id is the event cursor');
controller.abort();
await waitMetric('subhub_subscriptions', 0);
console.log(`raw SSE: ids ${events.map((e) => e.id).join(',')} are the cursors`);
