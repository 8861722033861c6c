// Apollo Client 4's HttpLink against the hub: a subscription over multipart HTTP receives
// events in order, and unsubscribing releases it on the hub.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { hub, fail, waitMetric, publish, expectEqual } from './harness.mjs';

const client = new ApolloClient({ link: new HttpLink({ uri: `${hub}/graphql` }), cache: new InMemoryCache() });
const subscription = gql`
  subscription ($topic: String!) {
    events(topic: $topic) {
      topic
      payload
    }
  }
`;
const received = [];
let handle;
const done = new Promise((resolve, reject) => {
  handle = client.subscribe({ query: subscription, variables: { topic: 'apollo' } }).subscribe({
    next: (result) => {
      if (result.error) return reject(result.error);
      received.push(result.data.events.payload.n);
      if (received.length === 20) resolve();
    },
    error: reject,
  });
});
await waitMetric('subhub_subscriptions', 1);
const connections = await (await fetch(`${hub}/metrics`)).text();
if (!connections.includes('subhub_connections{transport="multipart"} 1')) fail('the client is not on multipart');
for (let n = 0; n < 20; n++) await publish('apollo', { n });
await done.catch((error) => fail(`the subscription failed: ${error}`));
expectEqual(received, [...Array(20).keys()], 'events in order');
handle.unsubscribe();
await waitMetric('subhub_subscriptions', 0);

// Queries from the same link are plain JSON.
const { data } = await client.query({ query: gql`{ brokers { name } }` });
expectEqual(data.brokers.map((b) => b.name), ['local'], 'query');
console.log('Apollo Client multipart: 20 events in order, released on unsubscribe');
