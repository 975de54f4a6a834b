/**
 * The sends a Dispatcher lets off its concurrency limit once they have run for `stallMs`: a
 * receiver that hangs until the timeout costs a socket, a timer and its request's body, not
 * the claiming, signing and recording that the limit bounds, so it must not take the others'
 * slots. At most `maxCount` sends are let off at a time (sockets stay bounded), holding at
 * most `maxBytes` of event JSON between them (memory stays bounded however large the events
 * are: each request's body carries its event once, 4/3 of it in base64url for
 * `signed_request`). A stalled send that does not fit keeps counting against the limit and
 * is let off once others end.
 */
export class StalledSends {
  /** The sends in flight by key, in the order they started. */
  private readonly sends = new Map<number, { started: number; bytes: number; letOff: boolean }>();
  /** Sends let off now, and the event bytes they hold. */
  count = 0;
  bytes = 0;

  constructor(private readonly maxCount: number, private readonly maxBytes: number, private readonly stallMs: number) {}

  started(key: number, now: number, bytes: number): void {
    this.sends.set(key, { started: now, bytes, letOff: false });
  }

  ended(key: number): void {
    const send = this.sends.get(key);
    if (send?.letOff) {
      this.count--;
      this.bytes -= send.bytes;
    }
    this.sends.delete(key);
  }

  /** Lets off the sends that have run for `stallMs`, the oldest first, as far as the caps allow. */
  sweep(now: number): void {
    for (const send of this.sends.values()) {
      if (now - send.started < this.stallMs || this.count >= this.maxCount) return;
      if (send.letOff || this.bytes + send.bytes > this.maxBytes) continue; // a smaller one may still fit
      send.letOff = true;
      this.count++;
      this.bytes += send.bytes;
    }
  }
}
