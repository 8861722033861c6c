// GraphiQL against this hub: queries and mutations over HTTP, subscriptions over the hub's
// WebSocket endpoint (graphql-transport-ws). A token the dashboard keeps for this tab is sent
// in connection_init; headers set in GraphiQL's editor go with HTTP requests.
'use strict';

const url = new URL('/graphql', location.href).href;
const token = sessionStorage.getItem('subhub.token') || '';
const wsClient = graphqlWs.createClient({
  url: url.replace(/^http/, 'ws'),
  lazy: true,
  connectionParams: () => (token ? { authorization: `Bearer ${token}` } : {}),
});
const fetcher = GraphiQL.createFetcher({
  url,
  wsClient,
  headers: token ? { authorization: `Bearer ${token}` } : {},
});
const defaultQuery = `# Subscribe, then publish from another tab or a shell:
#   curl -X POST localhost:4000/publish/demo -d '{"hello": "world"}'
subscription {
  events(topic: "demo") {
    id
    topic
    payload
  }
}
`;
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, { fetcher, defaultQuery, defaultEditorToolsVisibility: false }),
);
