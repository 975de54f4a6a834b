import { closeSync, fdatasync, openSync } from 'node:fs';

/**
 * Makes commits durable off the event loop. A commit with synchronous=NORMAL writes its WAL
 * frames into the operating system's cache and returns; `sync()` then resolves once an
 * fdatasync of the WAL file, started after that commit, has finished on libuv's thread pool.
 * Each commit starts its own at once (the kernel joins concurrent ones on one file): making
 * a commit wait for the fdatasync under way and then one more cost up to two disk syncs, and
 * publish p99 was 24-32 ms against 20-25 ms (bench/latency.ts, SQLite, two runs each).
 *
 * Why this is as durable as synchronous=FULL (which fsyncs the WAL inside COMMIT): the commit's
 * frames are either still in the WAL, which the fdatasync puts on disk, or already copied
 * into the database file by a checkpoint (checkpointer.ts, or the store's own automatic one),
 * which with synchronous=NORMAL or FULL syncs the database file before the WAL is reset and
 * syncs the WAL header when the file is reused (sqlite.org/pragma.html#pragma_synchronous).
 * The WAL file is never deleted while this store's connection is open, so the descriptor
 * stays on the right file.
 *
 * Measured (bench/latency.ts, SQLite, 1,000 publishes/s, `--cpu-prof`): the longest stretches
 * of the event loop were COMMITs of publish batches waiting on the WAL's fsync (37 of 87 ms
 * in one), and every request in flight waited with them. This disk's fdatasync took 0.6 ms
 * at the median, 8-12 ms at the 99th percentile and up to 30 ms: the floor of a durable
 * publish's answer time here, wherever the sync runs.
 */
export class WalSync {
  private fd: number | null = null;
  private inFlight = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly walPath: string) {}

  /** Resolves when everything committed before this call is on disk. */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      let fd: number;
      try {
        fd = this.fd ??= openSync(this.walPath, 'r');
      } catch (err) {
        return reject(err);
      }
      this.inFlight++;
      fdatasync(fd, (err) => {
        if (--this.inFlight === 0) for (const done of this.idle.splice(0)) done();
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Waits for the syncs under way, then closes the descriptor. */
  async close(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
