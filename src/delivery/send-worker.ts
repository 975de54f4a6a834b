/**
 * The thread behind ThreadedSender (send-thread.ts): a Sender of its own (undici agent,
 * timeouts, the public-only DNS lookup) that signs and POSTs what the main thread claimed
 * and answers with each SendResult. Requests and answers travel in batches, one message per
 * turn of either thread's event loop (PerTurn).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { DeliveryConfig } from '../config.js';
import { buildNotification } from './request.js';
import { Sender } from './sender.js';
import { noAnswer, PREPARING_FAILED, type SendResult } from './transport.js';
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
  for (const r of msg) {
    let headers: Record<string, string>;
    let body: Buffer;
    try {
      // The body is bytes outside V8's heap while in flight (THREAD_HEAP in send-thread.ts);
      // a small one takes a slice of Node's 8 KiB pool.
      ({ headers, body } = buildNotification(r.notification));
    } catch {
      answers.push([r.id, noAnswer(PREPARING_FAILED, 0)]);
      continue;
    }
    send(r.id, r.url, headers, body);
  }
});

/**
 * Sends one request and queues its answer. Outside the message handler on purpose: a callback
 * made in there would keep the handler's scope, and with it the batch (every body's event
 * JSON), alive until its request ends.
 */
function send(id: number, url: string, headers: Record<string, string>, body: Buffer): void {
  void sender.send(url, headers, body).then((result) => answers.push([id, result]));
}
