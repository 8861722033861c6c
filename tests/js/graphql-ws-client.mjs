// The reference graphql-transport-ws client (npm graphql-ws, createClient) against the hub:
// a query, a subscription that receives three events, and a clean unsubscribe.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { wsUrl, waitMetric, publish, expectEqual, fail } from './harness.mjs';

const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });

const query = [];
for await (const result of client.iterate({ query: '{ brokers { name kind } }' })) query.push(result);
expectEqual(query, [{ data: { brokers: [{ name: 'local', kind: 'memory' }] } }], 'query over WebSocket');

const received = [];
let completed = false;
const events = new Promise((resolve, reject) => {
  const unsubscribe = client.subscribe(
    { query: 'subscription($t: String!) { events(topic: $t) { topic payload } }', variables: { t: 'js' } },
    {
      next: (result) => {
        received.push(result.data.events.payload.n);
        if (received.length === 3) {
          unsubscribe();
          resolve();
        }
      },
      error: (err) => reject(new Error(err instanceof Error ? err.message : `${err?.type ?? ""} ${err?.code ?? ""} ${err?.reason ?? JSON.stringify(err)}`)),
      complete: () => { completed = true; },
    },
  );
});
await waitMetric('subhub_subscriptions', 1);
for (let n = 0; n < 3; n++) await publish('js', { n });
await events.catch((err) => fail(`subscription error: ${err.message}`));
expectEqual(received, [0, 1, 2], 'events');
await waitMetric('subhub_subscriptions', 0);
await waitMetric('subhub_sources_open', 0);

// A validation error reaches the error callback, not next.
const error = await new Promise((resolve) => {
  client.subscribe({ query: 'subscription { nope }' }, { next: () => resolve(null), error: resolve, complete: () => resolve(null) });
});
if (!Array.isArray(error) || !error[0].message) fail(`expected GraphQL errors, got ${JSON.stringify(error)}`);

await client.dispose();
console.log(`graphql-ws client ok: query, ${received.length} events, unsubscribe (completed callback: ${completed}), validation error`);
process.exit(0);
