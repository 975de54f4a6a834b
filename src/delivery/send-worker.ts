/**
 * The thread behind ThreadedSender (send-thread.ts): a Sender of its own (undici agent,
 * timeouts, the public-only DNS lookup) that POSTs what the main thread signed and answers
 * with each SendResult. Requests and answers travel in batches, one message per turn of
 * either thread's event loop (PerTurn).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { DeliveryConfig } from '../config.js';
import { Sender } from './sender.js';
import type { SendResult } from './transport.js';
import { PerTurn, type SendRequest } from './send-thread.js';

const { cfg, allowPrivate } = workerData as { cfg: DeliveryConfig; allowPrivate: boolean };
const sender = new Sender(cfg, allowPrivate);
const port = parentPort!;
const answers = new PerTurn<[number, SendResult]>((batch) => port.postMessage(batch));

port.on('message', (msg: SendRequest[] | 'close') => {
  if (msg === 'close') {
    void sender.close().finally(() => port.close());
    return;
  }
  for (const r of msg) void sender.send(r.url, r.headers, r.body).then((result) => answers.push([r.id, result]));
});
