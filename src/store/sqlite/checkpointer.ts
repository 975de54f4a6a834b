import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside the
 * COMMIT that takes the WAL past 1,000 pages, on the committing connection: it copies the
 * WAL's pages into the database file and syncs the WAL before and the database file after
 * (synchronous=NORMAL or FULL), all on Herald's main thread, and every request and delivery
 * waits for it. Here a second connection, in a worker thread, runs
 * `PRAGMA wal_checkpoint(PASSIVE)` every INTERVAL_MS: it copies what it can without waiting
 * for any reader or writer (a writer keeps appending meanwhile) and syncs the database file.
 *
 * The store's own automatic checkpoint stays, at SQLite's 1,000 pages: a checkpoint from
 * another connection can never start the WAL over while commits keep coming (SQLite starts
 * it over at the first write transaction that finds every frame copied, and at 1,000
 * publishes a second a commit lands during nearly every checkpoint; the WAL grew to the
 * 40 MiB of a 10,000-page limit in the latency scenario). When it comes, it finds all but
 * the last few frames copied and synced by the thread, so it copies and syncs little, and
 * then the WAL starts over. Measured (bench/commit-stalls.ts, two runs each): commit p99
 * 0.89-1.32 ms without the thread, 0.37-0.43 with it, event-loop delay p99 2.3-3.3 against
 * 2.0-2.2 ms, the WAL at 4 MiB either way; with the store's checkpoint at 2,000 pages
 * 0.32-0.36 ms and 8 MiB, at 4,000 p99.9 and the loop's delay went up again (16 MiB).
 *
 * Durability is unchanged (see WalSync): the thread's connection runs with SQLite's default
 * synchronous=FULL, so a checkpoint syncs the database file before it marks the frames as
 * copied, and SQLite starts the WAL over only after that mark covers every frame. A thread
 * that fails leaves the store's own checkpoint to do all the work, as before.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(path: string) {
    const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');
    // Plain CommonJS evaluated in the thread: it runs the same from src/ under tsx and from dist/.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { betterSqlite3, path, intervalMs: INTERVAL_MS }, resourceLimits: THREAD_HEAP });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.unref();
    // A thread that fails (the file cannot be opened, a disk error) leaves the store's own checkpoint to do it all.
    this.worker.on('error', () => undefined);
  }

  /** Stops the thread after the checkpoint under way, if any. Call it before closing the store's connection. */
  close(): Promise<void> {
    this.worker.ref(); // the process waits for the thread's end it is waiting for
    this.worker.postMessage('close'); // a no-op once the thread has ended
    return this.exited;
  }
}

/** The thread allocates next to nothing: a small heap keeps an idle Herald's resident memory down. */
const THREAD_HEAP = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 };

/** How often the thread checkpoints. At 1,000 publishes a second that is a few hundred pages each time. */
const INTERVAL_MS = 50;

/** The thread: its own connection to the file, a PASSIVE checkpoint every `intervalMs`, and an end on any message. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.path, { fileMustExist: true });
// It never writes. A PASSIVE checkpoint takes no lock a writer waits for, and the store's
// own automatic checkpoint, finding this one under way, skips its turn without waiting.
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const timer = setInterval(() => {
  try { checkpoint.get(); } catch {}
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;
