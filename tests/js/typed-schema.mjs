// A typed schema seen by the reference clients: GraphiQL's introspection query (graphql's own
// getIntrospectionQuery, as GraphiQL sends it) returns the SDL's types, and the npm graphql-ws
// client subscribes to a typed field and receives typed events.
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { hub, wsUrl, waitMetric, publish, expectEqual, fail } from './harness.mjs';

const introspection = await fetch(`${hub}/graphql`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
  body: JSON.stringify({ query: getIntrospectionQuery() }),
}).then((res) => res.json());
if (introspection.errors) fail(`introspection errors: ${JSON.stringify(introspection.errors)}`);
const schema = buildClientSchema(introspection.data);
const sdl = printSchema(schema);
for (const expected of [
  'enum Status {\n  OPEN\n  PAID\n  SHIPPED\n}',
  'orderUpdated(id: ID!): Order!',
  'myOrders: Order!',
  'bigOrders(min: Float!): Order!',
  'updateOrder(id: ID!, status: Status!): PublishResult!',
  'placeOrder(input: OrderInput!): PublishResult!',
  'items: [Item!]!',
  'events(topic: String!, broker: String): Event!',
]) {
  if (!sdl.includes(expected)) fail(`introspected schema lacks ${JSON.stringify(expected)}:\n${sdl}`);
}

const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
const received = [];
const events = new Promise((resolve, reject) => {
  const unsubscribe = client.subscribe(
    { query: 'subscription($id: ID!) { orderUpdated(id: $id) { id status items { sku qty } } }', variables: { id: 'js1' } },
    {
      next: (result) => {
        if (result.errors) reject(new Error(JSON.stringify(result.errors)));
        received.push(result.data.orderUpdated);
        if (received.length === 3) {
          unsubscribe();
          resolve();
        }
      },
      error: (err) => reject(new Error(JSON.stringify(err))),
      complete: () => {},
    },
  );
});
await waitMetric('subhub_subscriptions', 1);
const statuses = ['OPEN', 'PAID', 'SHIPPED'];
for (const [n, status] of statuses.entries()) {
  await publish('orders.js1', { id: 'js1', status, items: [{ sku: `s${n}`, qty: n }], ignored: true });
}
await events.catch((err) => fail(`subscription error: ${err.message}`));
expectEqual(
  received,
  statuses.map((status, n) => ({ id: 'js1', status, items: [{ sku: `s${n}`, qty: n }] })),
  'typed events',
);
await waitMetric('subhub_subscriptions', 0);
await client.dispose();
console.log(`typed schema ok: introspection shows the SDL's types, ${received.length} typed events over graphql-ws`);
process.exit(0);
