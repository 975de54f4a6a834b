/**
 * The receiver every scenario POSTs to: a minimal Node.js HTTP server on loopback that
 * drains the body and answers 200. It runs as its own process (bench/receiver.ts forks it)
 * so its work never shares an event loop with what is measured. It only counts requests.
 *
 * Options come as JSON in argv[2] (bench/receiver.ts writes them): `ports` to listen on (0:
 * any free one), several for several receiver origins, and `hang`, the indexes of ports that
 * read each request completely and then never answer (a receiver hanging until the sender's
 * timeout).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceiverOptions {
  ports: number[];
  hang: number[];
}

export type ReceiverMessage = { type: 'count'; reset?: boolean };
export type ReceiverReply =
  | { type: 'listening'; urls: string[]; at: number }
  | {
      type: 'count';
      /** Requests answered 200 on every port together. */
      received: number;
      /** Requests answered, per port (in the order of `ports`). */
      perPort: number[];
      /** Requests read and left unanswered, per port (only hanging ports have any). */
      held: number[];
      /** Date.now() of the first request since the last reset, null before any. */
      firstAt: number | null;
    };

const opts: ReceiverOptions = { ports: [0], hang: [], ...(process.argv[2] ? (JSON.parse(process.argv[2]) as Partial<ReceiverOptions>) : {}) };
const perPort = opts.ports.map(() => 0);
const held = opts.ports.map(() => 0);
let firstAt: number | null = null;
/** Unanswered responses stay referenced until their socket closes (the sender gave up). */
const hanging = new Set<ServerResponse>();

const servers = opts.ports.map((_, index) => {
  const hangs = opts.hang.includes(index);
  const server = createServer((req, res) => {
    firstAt ??= Date.now();
    req.on('data', () => {});
    req.on('end', () => {
      if (hangs) {
        held[index]!++;
        hanging.add(res);
        res.once('close', () => hanging.delete(res));
        return;
      }
      perPort[index]!++;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    });
  });
  // Longer than undici's keep-alive (10 s), so the server never closes a socket the client reuses.
  server.keepAliveTimeout = 30_000;
  // A hanging port must not give up itself: the sender's timeout is what is measured.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  return server;
});

Promise.all(
  servers.map(
    (server, i) =>
      new Promise<string>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.ports[i], '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
      }),
  ),
).then(
  (urls) => process.send!({ type: 'listening', urls, at: Date.now() } satisfies ReceiverReply),
  (err: Error) => {
    process.stderr.write(`receiver: ${err.message}\n`);
    process.exit(1);
  },
);

process.on('message', (msg: ReceiverMessage) => {
  if (msg.type !== 'count') return;
  const received = perPort.reduce((a, b) => a + b, 0);
  process.send!({ type: 'count', received, perPort: [...perPort], held: [...held], firstAt } satisfies ReceiverReply);
  if (msg.reset) {
    perPort.fill(0);
    held.fill(0);
    firstAt = null;
  }
});
process.on('disconnect', () => process.exit(0));
