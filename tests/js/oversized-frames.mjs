// A frame over max_message_bytes, sent by the npm `ws` client (what browsers and Node apps
// use): the client must receive close 1009, at 2 MiB as at 16 MiB, never a reset (1006).
import WebSocket from 'ws';
import { wsUrl, fail, expectEqual, waitMetric } from './harness.mjs';

function oversized(bytes) {
  return new Promise((resolve) => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    socket.on('error', () => {}); // the close code below tells what happened
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init' }));
    });
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === 'connection_ack') {
        socket.send(JSON.stringify({ type: 'ping', payload: { pad: 'x'.repeat(bytes) } }));
      }
    });
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

for (const mib of [2, 16]) {
  const closed = await oversized(mib * 1024 * 1024);
  expectEqual(closed.code, 1009, `close code after a ${mib} MiB frame`);
}
await waitMetric('subhub_connections', 0);
console.log('oversized frames ok: 1009 at 2 and 16 MiB');
