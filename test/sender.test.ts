import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { DeliveryConfig } from '../src/config.js';
import { Sender } from '../src/delivery/sender.js';

/**
 * The Sender against a real HTTP server: the whole-request timeout (HERALD_DELIVERY_TIMEOUT)
 * holds however the receiver answers, and the response excerpt is read up to its limit and
 * no further.
 */
describe('Sender', () => {
  const EXCERPT = 64;
  const TIMEOUT = 600;
  let server: Server;
  let base: string;
  let sender: Sender;
  const open = new Set<ServerResponse>();
  let counted = 0;
  const routes: Record<string, (res: ServerResponse) => void> = {
    '/empty': (res) => res.writeHead(204).end(),
    '/short': (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('ab');
      setTimeout(() => res.end('cd'), 20);
    },
    // Headers at once, then a byte every 100 ms, never ending: undici's bodyTimeout restarts
    // with each byte, so only the whole-request deadline ends it.
    '/trickle': (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const tick = setInterval(() => res.write('x'), 100);
      res.on('close', () => clearInterval(tick));
      open.add(res);
    },
    // More than the excerpt, then nothing more and no end: the excerpt is all that is read.
    '/long-then-hang': (res) => {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '7' });
      res.write('y'.repeat(EXCERPT + 100));
      open.add(res);
    },
    '/hang': (res) => void open.add(res),
    '/count': (res) => {
      counted++;
      res.writeHead(200).end();
    },
    // The excerpt's bytes arrive in several writes, then the answer never ends.
    '/chunks': (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('a'.repeat(40));
      setTimeout(() => res.write('b'.repeat(40)), 20);
      open.add(res);
    },
    // Part of the announced body, then the connection is cut.
    '/broken': (res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
      res.write('z'.repeat(10));
      setTimeout(() => res.socket?.destroy(), 20);
    },
  };

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        const route = routes[req.url ?? ''];
        if (route) route(res);
        else res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const cfg = { connectionsPerOrigin: 16, timeoutMs: TIMEOUT, connectTimeoutMs: 500, egressAddress: null, responseExcerptBytes: EXCERPT } as unknown as DeliveryConfig;
    sender = new Sender(cfg, true);
  });
  after(async () => {
    for (const res of open) res.destroy();
    await sender.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const send = (path: string) => sender.send(`${base}${path}`, { 'content-type': 'text/plain' }, 'hello');

  test('an empty answer has no excerpt', async () => {
    const r = await send('/empty');
    assert.equal(r.statusCode, 204);
    assert.equal(r.excerpt, null);
    assert.equal(r.error, null);
  });

  test('an answer in several chunks is read whole when under the limit', async () => {
    const r = await send('/short');
    assert.equal(r.statusCode, 200);
    assert.equal(r.excerpt, 'abcd');
  });

  test('an answer over the limit is cut at it and not read further, even if it never ends', async () => {
    const r = await send('/long-then-hang');
    assert.equal(r.statusCode, 503);
    assert.equal(r.excerpt, 'y'.repeat(EXCERPT));
    assert.equal(r.retryAfter, '7');
    assert.equal(r.error, 'receiver answered 503');
    assert.ok(r.durationMs < TIMEOUT, `answered in ${r.durationMs} ms, before the timeout`);
  });

  test('an excerpt over several chunks is cut at the limit', async () => {
    const r = await send('/chunks');
    assert.equal(r.statusCode, 200);
    assert.equal(r.excerpt, 'a'.repeat(40) + 'b'.repeat(EXCERPT - 40));
    assert.equal(r.error, null);
  });

  test('an answer cut off before its end is a failed attempt, not a success', async () => {
    const r = await send('/broken');
    assert.equal(r.statusCode, null);
    assert.ok(r.error, 'the attempt says why it failed');
  });

  test('a receiver that never answers times out after the delivery timeout', async () => {
    const r = await send('/hang');
    assert.equal(r.statusCode, null);
    assert.equal(r.error, 'timeout: no complete answer in time');
    assert.ok(r.durationMs >= TIMEOUT - 5 && r.durationMs < TIMEOUT + 1000, `took ${r.durationMs} ms`);
  });

  test('a body that trickles forever is cut by the whole-request timeout', async () => {
    const r = await send('/trickle');
    assert.equal(r.statusCode, null);
    assert.equal(r.error, 'timeout: no complete answer in time');
    assert.ok(r.durationMs >= TIMEOUT - 5 && r.durationMs < TIMEOUT + 1000, `took ${r.durationMs} ms`);
  });

  test('timeouts of many requests at once each end theirs, and the others still answer', async () => {
    const results = await Promise.all([...Array.from({ length: 6 }, () => send('/hang')), send('/short'), send('/empty')]);
    assert.deepEqual(results.map((r) => r.error ?? r.statusCode), [...Array(6).fill('timeout: no complete answer in time'), 200, 204]);
  });

  test('a request still queued for a socket at its deadline times out, and is not sent once a socket frees', async () => {
    // One socket: the second request waits in undici's queue behind the first, which hangs.
    const cfg = { connectionsPerOrigin: 1, timeoutMs: TIMEOUT, connectTimeoutMs: 500, egressAddress: null, responseExcerptBytes: EXCERPT } as unknown as DeliveryConfig;
    const one = new Sender(cfg, true);
    try {
      // Warm first (its pool, its socket): the two requests below must start together, so
      // their deadlines pass in the same sweep. Started cold, the first one's dispatch (making
      // the pool, connecting) put a millisecond or more between them, and in 4 of 25 runs a
      // sweep fell in between: the first timed out alone, its socket closed, and the second
      // went out on a new one before its own deadline, as it may.
      assert.equal((await one.send(`${base}/empty`, {}, 'warm')).statusCode, 204);
      counted = 0;
      const [hung, queued] = await Promise.all([one.send(`${base}/hang`, {}, 'a'), one.send(`${base}/count`, {}, 'b')]);
      assert.equal(hung.error, 'timeout: no complete answer in time');
      assert.equal(queued.error, 'timeout: no complete answer in time');
      assert.ok(queued.durationMs < TIMEOUT + 1000, `the queued one ended by its deadline (${queued.durationMs} ms)`);
      // The first one's abort closes its socket; the queued one must not go out on the next.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(counted, 0, 'the request that timed out in the queue never reached the receiver');
      const fresh = await one.send(`${base}/count`, {}, 'c');
      assert.equal(fresh.statusCode, 200, 'the sender still works after');
      assert.equal(counted, 1);
    } finally {
      await one.close();
    }
  });

  test('a receiver whose connect never completes fails by the connect timeout, and other origins still answer', async () => {
    // A listening socket that never accepts: its thread blocks once it listens, so the
    // kernel's accept queue (backlog 1) fills with the first connections and drops the SYNs
    // of the next, whose connect then hangs as it does to a host that is down.
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const net = require('node:net'); const { parentPort, workerData } = require('node:worker_threads');
       const server = net.createServer();
       server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         parentPort.postMessage(server.address().port);
         while (Atomics.load(workerData, 0) === 0) Atomics.wait(workerData, 0, 0, 100);
         server.close();
       });`,
      { eval: true, workerData: flag },
    );
    const sockets: Socket[] = [];
    // The connect timeout well before the whole-request deadline: a connection that was made
    // but never answered would end at the deadline, with the other error.
    const cfg = { connectionsPerOrigin: 4, timeoutMs: 3000, connectTimeoutMs: 300, egressAddress: null, responseExcerptBytes: EXCERPT } as unknown as DeliveryConfig;
    const own = new Sender(cfg, true);
    try {
      const port = await new Promise<number>((resolve) => worker.once('message', resolve));
      for (let i = 0; i < 4; i++) sockets.push(connect(port, '127.0.0.1').on('error', () => undefined));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [stuck, other] = await Promise.all([own.send(`http://127.0.0.1:${port}/h`, {}, 'x'), own.send(`${base}/empty`, {}, 'y')]);
      assert.equal(other.statusCode, 204, 'another origin answered meanwhile');
      assert.equal(stuck.statusCode, null);
      assert.equal(stuck.error, 'connect timeout');
      assert.ok(stuck.durationMs >= 250 && stuck.durationMs < 2000, `took ${stuck.durationMs} ms`);
    } finally {
      await own.close();
      for (const socket of sockets) socket.destroy();
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await worker.terminate();
    }
  });

  test('an address that is not a URL is a failed attempt, not a throw', async () => {
    const r = await sender.send('not a url', {}, 'x');
    assert.equal(r.statusCode, null);
    assert.ok(r.error);
  });
});
