/**
 * What sending a delivery answers, and what sends one, without undici: the main thread
 * loads undici only if it sends itself (HERALD_SEND_THREAD=false) or asks a host's access
 * check. Importing it added 20 MiB of resident memory; an idle Herald (compiled, the bench's
 * idle scenario, two runs) is 78 MiB without it, 90-91 with.
 */

import type { Notification } from './request.js';

export interface SendResult {
  /** null when no answer came (connection error, timeout, refused address). */
  statusCode: number | null;
  retryAfter: string | undefined;
  excerpt: string | null;
  error: string | null;
  durationMs: number;
}

/** What signs and POSTs a notification: a Sender in this thread, or ThreadedSender (send-thread.ts). */
export interface Transport {
  /** Builds and signs the request (request.ts buildNotification), POSTs it to `url`, and answers how it went. */
  deliver(url: string, notification: Notification): Promise<SendResult>;
  close(): Promise<void>;
}

/** An attempt whose request could not be built: nothing was sent. */
export const PREPARING_FAILED = 'internal error preparing the request';

/** An attempt that got no answer from the receiver, and why. */
export function noAnswer(error: string, durationMs: number): SendResult {
  return { statusCode: null, retryAfter: undefined, excerpt: null, error, durationMs: Math.round(durationMs) };
}
