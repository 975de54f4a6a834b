/**
 * The latency scenario's floor: what answering a durable publish and delivering it costs on
 * this machine with nothing else of Herald's. A Fastify server (Herald's framework) whose
 * `POST /admin/events` parses the JSON body, writes it to a file and answers 202 once an
 * fdatasync of that file has finished off the event loop (how Herald on SQLite makes a
 * publish durable, store/sqlite/wal-sync.ts), and then sends the event to the receiver as
 * one signed POST (buildBenchRequest, the limit loop's request) on a keep-alive undici
 * Agent. No database, no queue, no retries, no authentication: the latency scenario's
 * publisher and receiver see the same traffic as Herald's, so Herald's answer times are read
 * against this one's, measured in the same run (bench/latency.ts, runLatencyFloor).
 *
 * argv[2]: JSON { receiverUrl, file, connections }. Sends { type: 'listening', url } over IPC.
 */
import { closeSync, fdatasync, openSync, writeSync } from 'node:fs';
import Fastify from 'fastify';
import { Agent, request } from 'undici';
import { benchDelivery, buildBenchRequest } from './payload.js';

const { receiverUrl, file, connections } = JSON.parse(process.argv[2]!) as { receiverUrl: string; file: string; connections: number };
const fd = openSync(file, 'w');
const agent = new Agent({ connections, keepAliveTimeout: 10_000 });
/** The file is rewritten in place, 4 KiB a slot: it stays small, and each write dirties a page as a commit would. */
const SLOTS = 1024;
let next = 0;

/** One signed POST; what the receiver answered is its count (the runner reads it), so nothing is kept here. */
const deliver = async (i: number) => {
  const req = buildBenchRequest(benchDelivery(receiverUrl, i, 0), Date.now());
  const res = await request(`${receiverUrl}/hooks/0`, { method: 'POST', headers: req.headers, body: req.body, dispatcher: agent });
  await res.body.text();
};

const app = Fastify();
app.post('/admin/events', async (req, reply) => {
  const i = next++;
  writeSync(fd, JSON.stringify(req.body), (i % SLOTS) * 4096);
  await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  setImmediate(() => void deliver(i).catch(() => undefined));
  return reply.code(202).send({ id: `evt_${i}` });
});

await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
if (typeof address !== 'object' || !address) throw new Error('no address');
process.send!({ type: 'listening', url: `http://127.0.0.1:${address.port}` });
process.on('SIGTERM', () => {
  void app.close().then(() => agent.close()).then(() => {
    closeSync(fd);
    process.exit(0);
  });
});
