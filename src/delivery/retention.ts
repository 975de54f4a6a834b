import type { Logger } from 'pino';
import type { Store } from '../store/types.js';

const DAY_MS = 86_400_000;
/** Rows per prune transaction: short enough that no lock is held for long. */
const BATCH = 1000;

export interface RetentionOptions {
  /** HERALD_RETENTION_DAYS. */
  days: number;
  /** The first run, shortly after start. Default 30 s. */
  firstDelayMs?: number;
  /** Then every hour by default. */
  intervalMs?: number;
}

/**
 * Runs Store.prune on worker processes: once shortly after start, then every interval,
 * never two at once. The timers are unref'd (they never keep the process alive). The
 * returned stop() clears them, asks a prune in progress to stop after its current batch,
 * and waits for it, so the store can be closed next.
 */
export function startRetention(store: Store, log: Logger, options: RetentionOptions): () => Promise<void> {
  const abort = new AbortController();
  let running: Promise<void> | null = null;
  const run = () => {
    if (running || abort.signal.aborted) return;
    const before = Date.now() - options.days * DAY_MS;
    running = store
      .prune(before, BATCH, abort.signal)
      .then((deleted) => log.info({ deleted, before: new Date(before).toISOString() }, 'retention: pruned old rows'))
      .catch((err: unknown) => log.error({ err }, 'retention: pruning failed; trying again at the next run'))
      .finally(() => (running = null));
  };
  const first = setTimeout(run, options.firstDelayMs ?? 30_000).unref();
  const every = setInterval(run, options.intervalMs ?? 3_600_000).unref();
  return async () => {
    clearTimeout(first);
    clearInterval(every);
    abort.abort();
    await running;
  };
}
