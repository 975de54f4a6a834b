/**
 * The receiver every scenario POSTs to: a minimal Node.js HTTP server on loopback that
 * drains the body and answers 200. It runs as its own process (bench/receiver.ts forks it)
 * so its work never shares an event loop with what is measured. It only counts requests.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let received = 0;
const server = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    received++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
});
// Longer than undici's keep-alive (10 s), so the server never closes a socket the client reuses.
server.keepAliveTimeout = 30_000;

export type ReceiverMessage = { type: 'count'; reset?: boolean };
export type ReceiverReply = { type: 'listening'; url: string } | { type: 'count'; received: number };

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send!({ type: 'listening', url: `http://127.0.0.1:${port}` } satisfies ReceiverReply);
});
process.on('message', (msg: ReceiverMessage) => {
  if (msg.type !== 'count') return;
  process.send!({ type: 'count', received } satisfies ReceiverReply);
  if (msg.reset) received = 0;
});
process.on('disconnect', () => process.exit(0));
