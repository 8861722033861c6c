// The Node reference peer: the idiomatic graphql-ws stack, serving the same
// `subscription { events(topic) { topic payload } }` and `POST /publish/{topic}` as subhub, so
// every subhub-load scenario runs against it unchanged. graphql-js executes each event once per
// subscriber, as such servers do.
//   node server.mjs [port]   (default 4200)
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { PubSub } from 'graphql-subscriptions';
import {
  GraphQLSchema, GraphQLObjectType, GraphQLScalarType, GraphQLNonNull, GraphQLString, GraphQLBoolean, Kind,
} from 'graphql';

const port = Number(process.argv[2] ?? 4200);
const pubsub = new PubSub();

const literal = (ast) => {
  switch (ast.kind) {
    case Kind.STRING: case Kind.BOOLEAN: return ast.value;
    case Kind.INT: case Kind.FLOAT: return Number(ast.value);
    case Kind.OBJECT: return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value)]));
    case Kind.LIST: return ast.values.map(literal);
    default: return null;
  }
};
const JSONScalar = new GraphQLScalarType({ name: 'JSON', serialize: (v) => v, parseValue: (v) => v, parseLiteral: literal });
const Event = new GraphQLObjectType({
  name: 'Event',
  fields: { topic: { type: new GraphQLNonNull(GraphQLString) }, payload: { type: JSONScalar } },
});
const schema = new GraphQLSchema({
  query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLBoolean, resolve: () => true } } }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      events: {
        type: new GraphQLNonNull(Event),
        args: { topic: { type: new GraphQLNonNull(GraphQLString) }, broker: { type: GraphQLString } },
        subscribe: (_, { topic }) => pubsub.asyncIterableIterator(topic),
        resolve: (event) => event,
      },
    },
  }),
});

const server = createServer((req, res) => {
  const match = req.method === 'POST' && req.url.match(/^\/publish\/([^?]+)/);
  if (!match) {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let payload;
    try { payload = JSON.parse(text); } catch { payload = text; }
    const topic = decodeURIComponent(match[1]);
    pubsub.publish(topic, { topic, payload });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
const wss = new WebSocketServer({ server, path: '/graphql' });
useServer({ schema }, wss);
server.listen(port, '127.0.0.1', () => console.error(`node graphql-ws peer on 127.0.0.1:${port}`));
