// The npm graphql-sse client with a token that expires during its subscription: the hub ends
// the stream with a `next` carrying the error `Token expired`, then `complete`, and the
// session is released. Usage: node sse-expiry.mjs HUB TOKEN
import { createClient } from 'graphql-sse';
import { hub, fail, waitMetric, publish } from './harness.mjs';

const token = process.argv[3];
if (!token) fail('usage: node sse-expiry.mjs HUB TOKEN');
const client = createClient({ url: `${hub}/graphql`, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
const query = 'subscription { events(topic: "sse.expiry") { payload } }';

const results = [];
const ended = new Promise((resolve, reject) => {
  client.subscribe({ query }, { next: (result) => results.push(result), error: reject, complete: resolve });
});
await waitMetric('subhub_subscriptions', 1);
await publish('sse.expiry', { n: 1 });
await ended.catch((error) => fail(`the subscription failed instead of ending: ${error}`));
const last = results.at(-1);
if (results.length < 2 || results[0].data?.events?.payload?.n !== 1) fail(`results before the end: ${JSON.stringify(results)}`);
if (last?.errors?.[0]?.message !== 'Token expired') fail(`the last result is not the expiry: ${JSON.stringify(last)}`);
await waitMetric('subhub_connections', 0);
console.log('graphql-sse: the stream ended with Token expired, and the session was released');
