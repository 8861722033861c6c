// The legacy subscriptions-transport-ws client (sub-protocol graphql-ws) against the hub.
import pkg from 'subscriptions-transport-ws';
import WebSocket from 'ws';
import { wsUrl, waitMetric, publish, expectEqual, fail } from './harness.mjs';

const { SubscriptionClient } = pkg;
const client = new SubscriptionClient(wsUrl, { reconnect: false }, WebSocket);

const received = [];
let subscription;
const done = new Promise((resolve, reject) => {
  subscription = client
    .request({ query: 'subscription { events(topic: "legacy") { payload } }' })
    .subscribe({
      next: (result) => {
        if (result.errors) return reject(new Error(JSON.stringify(result.errors)));
        received.push(result.data.events.payload.n);
        if (received.length === 3) resolve();
      },
      error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
    });
});
await waitMetric('subhub_subscriptions', 1);
for (let n = 0; n < 3; n++) await publish('legacy', { n });
await done.catch((err) => fail(`subscription error: ${err.message}`));
expectEqual(received, [0, 1, 2], 'events');
subscription.unsubscribe();
await waitMetric('subhub_subscriptions', 0);

const query = await new Promise((resolve, reject) => {
  client.request({ query: '{ brokers { name } }' }).subscribe({ next: resolve, error: reject });
});
expectEqual(query.data, { brokers: [{ name: 'local' }] }, 'query');
client.close();
console.log(`subscriptions-transport-ws client ok: ${received.length} events, unsubscribe, query`);
process.exit(0);
