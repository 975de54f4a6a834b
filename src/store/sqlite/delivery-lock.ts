import Database from 'better-sqlite3';

/** How often a process without the lock tries to take it (a claim call in between finds nothing to do). */
const RETRY_MS = 1000;

/**
 * Which process delivers from a SQLite database: the one holding an exclusive lock on a file
 * beside it (`<database>-delivery-lock`), taken through a SQLite connection of its own in
 * exclusive locking mode. The operating system drops the lock when the process ends, however
 * it ends, so a crashed holder is replaced at the next try of another process, in any
 * container on the same kernel; while a holder runs, nobody else can take it (another
 * connection in the same process neither: SQLite tracks its locks by file). Nothing is
 * written to the database for it.
 *
 * Do not delete the file while Herald runs: a process would lock a new file beside the old
 * holder's, and both would deliver.
 */
export class DeliveryLock {
  private db: Database.Database | null = null;
  private nextTry = 0;

  constructor(private readonly path: string) {}

  /** Whether this store holds the lock; without it, tries to take it at most once per RETRY_MS. */
  held(): boolean {
    if (this.db) return true;
    const now = Date.now();
    if (now < this.nextTry) return false;
    this.nextTry = now + RETRY_MS;
    const db = new Database(this.path, { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE; COMMIT'); // in exclusive locking mode the lock stays after COMMIT
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
      throw err;
    }
    this.db = db;
    return true;
  }

  /** Lets another process take the lock (at its next try). */
  release(): void {
    this.db?.close();
    this.db = null;
  }
}
