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
import { PerTurn, type SendBatch } from './send-thread.js';

const { cfg, allowPrivate } = workerData as { cfg: DeliveryConfig; allowPrivate: boolean };
const sender = new Sender(cfg, allowPrivate);
const port = parentPort!;
const answers = new PerTurn<[number, SendResult]>((batch) => port.postMessage(batch));

port.on('message', (msg: SendBatch | 'close') => {
  if (msg === 'close') {
    void sender.close().finally(() => port.close());
    return;
  }
  const bytes = Buffer.from(msg.bytes);
  let start = 0;
  for (let i = 0; i < msg.requests.length; i++) {
    const r = msg.requests[i]!;
    const end = msg.ends[i]!;
    // A copy of its own (Node's 8 KiB pool for a small body): a view into the batch's buffer
    // would keep all of it alive as long as any one of its requests, say to a receiver that
    // hangs until the timeout.
    send(r.id, r.url, r.headers, Buffer.from(bytes.subarray(start, end)));
    start = end;
  }
});

/**
 * Sends one request and queues its answer. Outside the message handler on purpose: a callback
 * made in there would keep the handler's scope, and with it the batch's buffer, alive until
 * its request ends.
 */
function send(id: number, url: string, headers: Record<string, string>, body: Buffer): void {
  void sender.send(url, headers, body).then((result) => answers.push([id, result]));
}
