import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Store } from '../store/types.js';

export interface FanOutDeps {
  store: Store;
  log: Logger;
  pollIntervalMs: number;
  /** A chunk of deliveries was queued: the dispatcher's hint. */
  queued: () => void;
}

/**
 * Queues the rest of the fan-outs that their publish left unfinished (an event matching at least
 * FAN_OUT_CHUNK subscriptions; see store/rows.ts), one chunk per transaction, giving the
 * event loop a turn between chunks so deliveries go out while the rest is queued. Woken by a
 * publish that left one, here or (PostgreSQL: a hint with FAN_OUT_HINT) in another process or
 * a host's transaction; the poll is the backstop, and picks up after a crash where the last
 * committed chunk stopped. Each chunk commits durably (fsync), so a chunk whose deliveries
 * went out is never queued again.
 *
 * Why: see FAN_OUT_CHUNK.
 */
export class FanOutExpander {
  private running = false;
  private loopDone: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private hinted = false;

  constructor(private readonly deps: FanOutDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** A fan-out may be waiting: look now instead of at the next poll. */
  notify(): void {
    this.hinted = true;
    this.wakeUp?.();
  }

  /** Stops after the chunk in progress (the rest is queued by the next start, here or elsewhere). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeUp?.();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    const { store, log, pollIntervalMs, queued } = this.deps;
    let failures = 0;
    while (this.running) {
      this.hinted = false;
      try {
        const progress = await store.expandFanOut(Date.now());
        failures = 0;
        if (progress) {
          if (progress.deliveries > 0) queued();
          await nextTurn();
          continue;
        }
      } catch (err) {
        failures++;
        log.error({ err }, 'queueing a fan-out failed; retrying');
        await this.wait(Math.min(100 * 2 ** failures, pollIntervalMs * 5));
        continue;
      }
      if (!this.hinted) await this.wait(pollIntervalMs);
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}
