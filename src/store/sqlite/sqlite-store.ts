import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ResourceType } from '../../domain/catalog.js';
import { HeraldError } from '../../domain/errors.js';
import { newLease, newTimedId } from '../../domain/ids.js';
import { loadMigrations } from '../migrations.js';
import { SqliteOAuthStore } from './oauth.js';
import { prune } from './retention.js';
import { Bounded, ClaimCache } from './claim-cache.js';
import { DeliveryLock } from './delivery-lock.js';
import { WalSync } from './wal-sync.js';
import { Checkpointer } from './checkpointer.js';
import {
  CLAIM_WINDOW, claimedDeliveries, type ClaimKey, COLUMNS, eventBody, FAN_OUT_CHUNK, firstChunk, nextChunk, originSql, type FanOutChunk, prefixed, toApp, toCompany, toDelivery, toGrant, toResourceType, toRole,
  toEvent, toSubscription, toUser, unprefix,
} from '../rows.js';
import {
  originKey,
  type App, type Attempt, type ClaimedDelivery, type ClaimRoom, type SecretKind, type Company, type Delivery, type DeliveryFilter,
  type DeliveryOutcome, type FanOutProgress, type Grant, type NewAccessToken, type NewEvent, type Owner, type PublishOptions, type PublishResult, type Role,
  type Store, type Subscription, type TokenContext, type User,
} from '../types.js';

type Row = Record<string, unknown>;

/**
 * LIMITs take their bound value through `CAST(? AS INTEGER)`, never as a bare `?`: SQLite's
 * planner reads a bare LIMIT parameter's value, and a statement whose plan used a bound value
 * is prepared again whenever that parameter is bound, which better-sqlite3 does on every run.
 * Measured (SQLite 3.53, this machine): the claim window's SELECT 10.2 us with `LIMIT ?`,
 * 3.6 us with the CAST; FAN_OUT for one subscription 103 us against 31 us; a publish of one
 * delivery, its share of the group commit included, 270 us against 95-170 us.
 */

/**
 * A chunk of an event's deliveries in one statement (FanOutChunk): one per subscription to
 * the channel that matches the event's resources, with the rule of matchesResource in
 * domain/subscription.ts (no resource, or the event names the subscription's resource in
 * `resources`, or the event's object is that resource), at most @max of them in subscription
 * id order after @after (subscription_channels' key order, no sort), the origin as originSql
 * computes it, ids from herald_dlv_id(now) (newTimedId, registered in the constructor).
 * RETURNING gives the subscriptions queued, so a chunk that filled @max knows where the next
 * starts. Reading the subscriptions into JavaScript and inserting row by row took 119 ms for
 * a fan-out to 10,000, on the event loop.
 */
const FAN_OUT = `INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
  SELECT herald_dlv_id(@now), @event_id, s.id, @company_id, s.app_id, @channel, ${originSql('instr')}, 'pending', 0, @due, @now, @now
  FROM subscription_channels c JOIN subscriptions s ON s.id = c.subscription_id
  WHERE c.company_id = @company_id AND c.channel = @channel AND c.subscription_id > @after AND s.created_at <= @before
    AND (s.resource_type IS NULL
         OR s.resource_id = (SELECT r.value FROM json_each(@resources) r WHERE r.key = s.resource_type)
         OR (s.resource_type = @object_type AND s.resource_id = @object_id))
  ORDER BY c.subscription_id LIMIT CAST(@max AS INTEGER)
  RETURNING subscription_id`;

/** The oldest fan-out still being queued, with its event. */
const NEXT_FAN_OUT = `SELECT f.event_id, f.after_subscription, e.company_id, e.channel, e.body, e.created_at
  FROM fanouts f JOIN events e ON e.id = f.event_id ORDER BY f.created_at LIMIT 1`;

/** Most publishes committed together (see commitPublishes); more wait for the next turn. */
const PUBLISH_BATCH = 64;

/**
 * The window a claim with room looks through first: the oldest due deliveries, in the order
 * of the deliveries_due index (its key, then rowid). From the start, or after a DueCursor:
 * those due at the cursor's time with a later rowid, then those due later. Two statements
 * because a row value, `(next_attempt_at, rowid) > (?, ?)`, seeks on the time alone and
 * steps through its ties: after 15,000 deliveries of one fan-out, all due at one time, 1.5 ms
 * against 36 us (SQLite 3.53, EXPLAIN QUERY PLAN: next_attempt_at=? AND rowid>?).
 */
const DUE_COLUMNS = 'SELECT id, origin, next_attempt_at, rowid FROM deliveries';
const DUE_WINDOW = `${DUE_COLUMNS} WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, rowid LIMIT CAST(? AS INTEGER)`;
const DUE_TIED = `${DUE_COLUMNS} WHERE status = 'pending' AND next_attempt_at = ? AND rowid > ? ORDER BY rowid LIMIT CAST(? AS INTEGER)`;
const DUE_LATER = `${DUE_COLUMNS} WHERE status = 'pending' AND next_attempt_at > ? AND next_attempt_at <= ? ORDER BY next_attempt_at, rowid LIMIT CAST(? AS INTEGER)`;
type DueWindowRow = [id: string, origin: string, due: number, rowid: number];

/** The longest a DueCursor is followed before a claim scans from the start again. */
const DUE_CURSOR_MS = 1000;

/**
 * Where the claims' window starts: every pending delivery due before it (in the index's
 * order) is held by this process, under a lease that lasts at least until `validUntil`.
 * Claims take the oldest first, so what is in flight is the head of the queue, and without
 * the cursor each claim read it again and looked past it: `limit × CLAIM_WINDOW + held`
 * rows, 320-450 for the 64-100 deliveries a claim takes with 256 in flight. Measured
 * (`--cpu-prof` of Herald's main thread, bench, SQLite, 100,000 deliveries, the last 12 s):
 * pickDue and its lease checks were 9.2% of the thread, its largest item; with the cursor
 * the window took 3.7% (dueWindow 3.1, advanceCursor 0.4, the lease checks 0.2) and the
 * thread was 53% idle against 47%. End to end, three alternating pairs: 4,378, 4,426 and
 * 3,083 -> 4,405, 4,589 and 3,878 deliveries/s, Herald's CPU 27.6-33.7 -> 26.4-29.4 s.
 *
 * Dropped (the next claim scans from the start) when something may have put a due delivery
 * before it: a delivery queued here, a retry or a ping due no later than it (mayFallDue), a
 * commit by another connection (`data_version`), a lease before it running out
 * (`validUntil`), and in any case after DUE_CURSOR_MS. A delivery it missed
 * would wait that long at most.
 */
interface DueCursor {
  due: number;
  rowid: number;
  validUntil: number;
  dataVersion: number;
  /** The held deliveries before it. */
  before: Set<string>;
}

/** The walk over origins (deliveries_due_origin): the first, then the next origin with pending deliveries, with its earliest. */
const FIRST_ORIGIN = `SELECT origin, next_attempt_at FROM deliveries WHERE status = 'pending' ORDER BY origin, next_attempt_at LIMIT 1`;
const NEXT_ORIGIN = `SELECT origin, next_attempt_at FROM deliveries WHERE status = 'pending' AND origin > ? ORDER BY origin, next_attempt_at LIMIT 1`;

/** One origin's oldest due deliveries. */
const DUE_OF_ORIGIN = `SELECT id, origin FROM deliveries WHERE status = 'pending' AND origin = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT CAST(? AS INTEGER)`;

/** What a claim reads of each delivery: the rows it names come from ClaimCache or are read once (selectClaimed). */
const CLAIMED_KEYS = 'd.id, d.attempts, d.event_id, d.subscription_id, d.app_id, d.company_id';
/** The deliveries picked by a claim, re-checked: still pending and due. */
const CLAIMED = `SELECT ${CLAIMED_KEYS} FROM deliveries d WHERE d.id IN (SELECT value FROM json_each(?)) AND d.status = 'pending' AND d.next_attempt_at <= ?`;
/** The delivery of a ping just stored under a lease (createPing). */
const LEASED = `SELECT ${CLAIMED_KEYS} FROM deliveries d WHERE d.id = ? AND d.lease_token = ?`;

/**
 * A delivery this store claimed and has not recorded yet: under which lease, until when, to
 * which origin. Kept for one more lease after `until` (unless another claim takes the
 * delivery, which replaces it), so that a late outcome of that lease is still recorded, as a
 * lease written on the row would be until it is replaced.
 */
interface HeldLease {
  lease: string;
  until: number;
  origin: string;
}

/** How one publish of a group commit went (commitPublishes). */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(p: { resolve: (value: T) => void; reject: (error: unknown) => void }, r: Settled<T>): void {
  if (r.ok) p.resolve(r.value);
  else p.reject(r.error);
}

/** What a claim's window read (dueWindow): `scan` rows at most, as of `dataVersion`. */
interface DueWindow {
  rows: DueWindowRow[];
  scan: number;
  dataVersion: number;
}

/** A due delivery as a claim picks it. */
interface DueRow {
  id: string;
  origin: string;
}

/**
 * The embedded engine: better-sqlite3 in WAL mode. SQLite has one writer, so every write
 * runs in a `BEGIN IMMEDIATE` transaction. Several processes may share the file (busy_timeout
 * makes them queue for the write lock), but one at a time delivers: the holder of its
 * DeliveryLock, whose claims keep their leases in memory (see claimDueDeliveries).
 *
 * synchronous=FULL: a commit is on disk before `POST /admin/events` answers 202, so an
 * acknowledged event survives power loss, not only a process crash. The dispatcher's own
 * bookkeeping commits with NORMAL instead (see writeRelaxed).
 */
export class SqliteStore implements Store {
  readonly engine = 'sqlite';
  readonly capabilities = { supportsSkipLocked: false, supportsListenNotify: false };
  readonly oauth: SqliteOAuthStore;
  /** @internal shared with SqliteOAuthStore */
  readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  private publishing: { e: NewEvent; now: number; resolve: (r: PublishResult) => void; reject: (err: unknown) => void }[] = [];
  /** Null for an in-memory database (nothing to make durable). */
  private readonly walSync: WalSync | null;
  /**
   * The publish commits whose WAL sync is under way, in commit order: `due` is the earliest
   * `now` among their publishes, which is when their deliveries fall due (claimableBy).
   */
  private readonly unsynced: { due: number }[] = [];
  /** The deliveries claimed and not yet recorded, by id (claimDueDeliveries). */
  private readonly held = new Map<string, HeldLease>();
  /** How many of `held` go to each origin. */
  private readonly heldByOrigin = new Map<string, number>();
  /**
   * WAL checkpoints on a thread of their own (checkpointer.ts), started by the first relaxed
   * write (a publish or outcomes: what fills the WAL), so an idle server has no such thread
   * (10 MiB resident: bench idle, compiled, 78 -> 88 MiB when it started with the store).
   */
  private checkpointer: Checkpointer | null = null;
  /** The file the checkpointer opens; null for an in-memory database (no WAL) or when it is turned off. */
  private readonly checkpointPath: string | null;
  /** Null for an in-memory database (no other connection can open it). */
  private readonly deliveryLock: DeliveryLock | null;
  /** Where the next claim's window starts (DueCursor); null: from the start. */
  private dueCursor: DueCursor | null = null;
  /** Rows claims read, kept between claims (selectClaimed). */
  private readonly claimCache = new ClaimCache();
  /** Runs `fn` in a deferred (read) transaction, so its statements see one snapshot of the file. */
  private readonly readTransaction: <T>(fn: () => T) => T;
  /**
   * Runs `fn` in a `BEGIN IMMEDIATE` transaction, or in a savepoint when one is open already
   * (write, and each publish of a group commit). better-sqlite3's `db.transaction(fn)` builds
   * four wrapper functions and defines twenty properties on them each time it is called, so
   * these are built once, with the function to run as their argument. Measured (one-row
   * insert, synchronous=NORMAL, 20,000 each): a transaction built per call 43-46 us, built
   * once 35 us.
   */
  private readonly immediateTransaction: <T>(fn: () => T) => T;

  /** `checkpointThread: false` leaves WAL checkpoints to SQLite's automatic one on this connection (bench/commit-stalls.ts compares). */
  constructor(path: string, options: { checkpointThread?: boolean } = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.walSync = path === ':memory:' ? null : new WalSync(`${path}-wal`);
    this.checkpointPath = path === ':memory:' || options.checkpointThread === false ? null : path;
    this.deliveryLock = path === ':memory:' ? null : new DeliveryLock(`${path}-delivery-lock`);
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    // Statement journals (what a savepoint or a many-row statement inside a transaction keeps
    // to undo itself) stay in memory; by default they spill to a temporary file past 64 KiB,
    // one pwrite per page. A publish is a savepoint in the group commit and writes a page per
    // index leaf it touches (see commitPublishes). Measured (bench, 100 subscriptions x 1,000
    // events): pwrite calls 6.0 -> 3.1 per delivery, all system calls 10.6 -> 7.6
    // (perf stat), and while publishing 400,000 -> 123,000 pwrites. It also keeps sorts and
    // VACUUM's copy in memory: every statement Herald runs is bounded (batched prunes, chunked
    // fan-outs), but a hand-run VACUUM or CREATE INDEX on a large file takes memory to match.
    this.db.pragma('temp_store = MEMORY');
    this.db.function('herald_dlv_id', { deterministic: false, varargs: false }, (now: unknown) => newTimedId('dlv', Number(now)));
    this.oauth = new SqliteOAuthStore(this);
    const run = this.db.transaction((fn: () => unknown) => fn());
    this.readTransaction = run as <T>(fn: () => T) => T;
    this.immediateTransaction = run.immediate as <T>(fn: () => T) => T;
  }

  /** Prepared statements are cached by their SQL text. @internal */
  q(sql: string): Database.Statement {
    let stmt = this.stmts.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.stmts.set(sql, stmt);
    }
    return stmt;
  }

  /** @internal */
  write<T>(fn: () => T): T {
    return this.immediateTransaction(fn);
  }

  /**
   * A write transaction committed with synchronous=NORMAL: durable against a crash of the
   * process (the WAL is written before the commit returns), not against a power cut until the
   * next FULL commit or checkpoint syncs the WAL. Only for the dispatcher's bookkeeping
   * (outcomes), whose loss re-sends deliveries, which at-least-once allows, and for
   * publishes, which are answered only after WalSync has put the WAL on disk. What else is
   * acknowledged to a client (subscriptions, grants...) stays FULL.
   * Measured on this machine: a FULL commit costs about 600 us (one fsync), a NORMAL one 30 us;
   * at thousands of deliveries per second the fsyncs were most of SQLite's time.
   * @internal
   */
  writeRelaxed<T>(fn: () => T): T {
    if (this.checkpointer === null && this.checkpointPath !== null) this.checkpointer = new Checkpointer(this.checkpointPath);
    this.q('PRAGMA synchronous = NORMAL').run();
    try {
      return this.write(fn);
    } finally {
      this.q('PRAGMA synchronous = FULL').run();
    }
  }

  async migrate(): Promise<void> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (const m of loadMigrations('sqlite')) {
      this.write(() => {
        if (this.db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version)) return;
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, Date.now());
      });
    }
  }

  async ping(): Promise<void> {
    this.q('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.deliveryLock?.release();
    await this.checkpointer?.close();
    await this.walSync?.close();
    this.stmts.clear();
    this.db.close();
  }

  async settingIfAbsent(key: string, value: string): Promise<string> {
    return this.write(() => {
      this.q('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, value);
      return String((this.q('SELECT value FROM settings WHERE key = ?').get(key) as Row).value);
    });
  }

  async putResourceType(t: ResourceType): Promise<void> {
    this.write(() => {
      const other = this.q('SELECT type FROM resource_types WHERE plural = ? AND type <> ?').get(t.plural, t.type) as Row | undefined;
      if (other) throw new HeraldError('CONFLICT', `plural "${t.plural}" is already used by resource type "${String(other.type)}"`);
      this.q(
        `INSERT INTO resource_types (type, plural, actions, parents, position)
         VALUES (@type, @plural, @actions, @parents, (SELECT COALESCE(MAX(position), 0) + 1 FROM resource_types))
         ON CONFLICT (type) DO UPDATE SET plural = excluded.plural, actions = excluded.actions, parents = excluded.parents`,
      ).run({ type: t.type, plural: t.plural, actions: JSON.stringify(t.actions), parents: JSON.stringify(t.parents) });
    });
  }

  async listResourceTypes(): Promise<ResourceType[]> {
    return (this.q('SELECT * FROM resource_types ORDER BY position').all() as Row[]).map(toResourceType);
  }

  async createCompany(c: Company): Promise<void> {
    try {
      this.q('INSERT INTO companies (id, name, sub_domain, created_at) VALUES (@id, @name, @sub_domain, @created_at)').run(c);
    } catch (err) {
      if (isUniqueViolation(err)) throw new HeraldError('SUB_DOMAIN_TAKEN', `sub_domain "${c.sub_domain}" is already taken`);
      throw err;
    }
  }

  async getCompany(id: string): Promise<Company | null> {
    const row = this.q('SELECT * FROM companies WHERE id = ?').get(id) as Row | undefined;
    return row ? toCompany(row) : null;
  }

  async putRole(role: Role): Promise<void> {
    this.q(
      `INSERT INTO roles (company_id, name, permissions) VALUES (?, ?, ?)
       ON CONFLICT (company_id, name) DO UPDATE SET permissions = excluded.permissions`,
    ).run(role.company_id, role.name, JSON.stringify(role.permissions));
  }

  async getRole(companyId: string, name: string): Promise<Role | null> {
    const row = this.q('SELECT * FROM roles WHERE company_id = ? AND name = ?').get(companyId, name) as Row | undefined;
    return row ? toRole(row) : null;
  }

  async createUser(u: User, passwordHash: string | null): Promise<void> {
    try {
      this.q(
        `INSERT INTO users (id, company_id, email, name, role, password_hash, created_at, updated_at)
         VALUES (@id, @company_id, @email, @name, @role, @password_hash, @created_at, @updated_at)`,
      ).run({ ...u, password_hash: passwordHash });
    } catch (err) {
      if (isUniqueViolation(err)) throw new HeraldError('EMAIL_TAKEN', `email "${u.email}" is already used in this company`);
      throw err;
    }
  }

  async getUser(companyId: string, id: string): Promise<User | null> {
    const row = this.q('SELECT * FROM users WHERE company_id = ? AND id = ?').get(companyId, id) as Row | undefined;
    return row ? toUser(row) : null;
  }

  async getUserById(id: string): Promise<User | null> {
    const row = this.q('SELECT * FROM users WHERE id = ?').get(id) as Row | undefined;
    return row ? toUser(row) : null;
  }

  async setUserPassword(companyId: string, id: string, passwordHash: string, now: number): Promise<boolean> {
    return this.q('UPDATE users SET password_hash = ?, updated_at = ? WHERE company_id = ? AND id = ?').run(passwordHash, now, companyId, id).changes > 0;
  }

  async setUserRole(companyId: string, id: string, role: string, now: number): Promise<User | null> {
    const row = this.q('UPDATE users SET role = ?, updated_at = ? WHERE company_id = ? AND id = ? RETURNING *').get(role, now, companyId, id) as Row | undefined;
    return row ? toUser(row) : null;
  }

  async createApp(a: App): Promise<void> {
    this.q(
      `INSERT INTO apps (id, name, url, redirect_uris, signature, client_id, client_secret, signing_secret, public_client, created_at)
       VALUES (@id, @name, @url, @redirect_uris, @signature, @client_id, @client_secret, @signing_secret, @public_client, @created_at)`,
    ).run({ ...a, redirect_uris: JSON.stringify(a.redirect_uris), public_client: a.public_client ? 1 : 0 });
  }

  async getApp(id: string): Promise<App | null> {
    const row = this.q('SELECT * FROM apps WHERE id = ?').get(id) as Row | undefined;
    return row ? toApp(row) : null;
  }

  async rotateAppSecret(appId: string, kind: SecretKind, secret: string, graceUntil: number, now: number): Promise<App | null> {
    const column = kind === 'client' ? 'client_secret' : 'signing_secret';
    return this.write(() => {
      const row = this.q('SELECT * FROM apps WHERE id = ?').get(appId) as Row | undefined;
      if (!row) return null;
      this.q('INSERT INTO app_secrets (app_id, kind, secret, expires_at, created_at) VALUES (?, ?, ?, ?, ?)').run(appId, kind, row[column], graceUntil, now);
      this.q(`UPDATE apps SET ${column} = ? WHERE id = ?`).run(secret, appId);
      return toApp({ ...row, [column]: secret });
    });
  }

  async createGrant(g: Grant, token: NewAccessToken): Promise<void> {
    this.write(() => {
      this.q(
        `INSERT INTO grants (id, app_id, user_id, company_id, scope, created_at, revoked_at)
         VALUES (@id, @app_id, @user_id, @company_id, @scope, @created_at, @revoked_at)`,
      ).run(g);
      this.insertTokens([token]);
    });
  }

  async getGrant(id: string): Promise<Grant | null> {
    const row = this.q('SELECT * FROM grants WHERE id = ?').get(id) as Row | undefined;
    return row ? toGrant(row) : null;
  }

  async revokeGrant(id: string, now: number): Promise<boolean> {
    return this.write(() => {
      const changed = this.q('UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes;
      if (changed === 0) return false;
      this.q('DELETE FROM access_tokens WHERE grant_id = ?').run(id);
      const subs = (this.q('SELECT id FROM subscriptions WHERE grant_id = ?').all(id) as Row[]).map((r) => String(r.id));
      for (const subId of subs) this.removeSubscription(subId, 'grant revoked', now);
      return true;
    });
  }

  private insertTokens(tokens: NewAccessToken[]): void {
    const stmt = this.q('INSERT INTO access_tokens (hash, grant_id, expires_at, created_at) VALUES (@hash, @grant_id, @expires_at, @created_at)');
    for (const t of tokens) stmt.run(t);
  }

  async insertAccessTokens(tokens: NewAccessToken[]): Promise<void> {
    if (tokens.length > 0) this.write(() => this.insertTokens(tokens));
  }

  async findAccessToken(hash: string): Promise<TokenContext | null> {
    const row = this.q(
      `SELECT t.expires_at, ${prefixed('g', COLUMNS.grants)}, ${prefixed('a', COLUMNS.apps)}, ${prefixed('u', COLUMNS.users)}
       FROM access_tokens t
       JOIN grants g ON g.id = t.grant_id AND g.revoked_at IS NULL
       JOIN apps a ON a.id = g.app_id
       JOIN users u ON u.id = g.user_id
       WHERE t.hash = ?`,
    ).get(hash) as Row | undefined;
    if (!row) return null;
    return {
      grant: toGrant(unprefix(row, 'g')!),
      app: toApp(unprefix(row, 'a')!),
      user: toUser(unprefix(row, 'u')!),
      expires_at: Number(row.expires_at),
    };
  }

  async createSubscription(s: Subscription): Promise<void> {
    this.write(() => {
      this.q(
        `INSERT INTO subscriptions (id, grant_id, app_id, user_id, company_id, channels, callback_url, resource_type, resource_id, headers, content_type, created_at, updated_at)
         VALUES (@id, @grant_id, @app_id, @user_id, @company_id, @channels, @callback_url, @resource_type, @resource_id, @headers, @content_type, @created_at, @updated_at)`,
      ).run(subscriptionParams(s));
      this.indexChannels(s);
    });
  }

  private indexChannels(s: Subscription): void {
    this.q('DELETE FROM subscription_channels WHERE subscription_id = ?').run(s.id);
    const stmt = this.q('INSERT INTO subscription_channels (company_id, channel, subscription_id) VALUES (?, ?, ?)');
    for (const channel of s.channels) stmt.run(s.company_id, channel, s.id);
  }

  async getSubscription(owner: Owner, id: string): Promise<Subscription | null> {
    const row = this.q('SELECT * FROM subscriptions WHERE id = ? AND app_id = ? AND user_id = ? AND company_id = ?').get(
      id, owner.app_id, owner.user_id, owner.company_id,
    ) as Row | undefined;
    return row ? toSubscription(row) : null;
  }

  async listSubscriptions(owner: Owner): Promise<Subscription[]> {
    const rows = this.q('SELECT * FROM subscriptions WHERE app_id = ? AND user_id = ? AND company_id = ? ORDER BY created_at, id').all(
      owner.app_id, owner.user_id, owner.company_id,
    ) as Row[];
    return rows.map(toSubscription);
  }

  async updateSubscription(owner: Owner, s: Subscription): Promise<boolean> {
    return this.write(() => {
      const changed = this.q(
        `UPDATE subscriptions SET channels = @channels, callback_url = @callback_url, resource_type = @resource_type,
           resource_id = @resource_id, headers = @headers, content_type = @content_type, updated_at = @updated_at
         WHERE id = @id AND app_id = @owner_app AND user_id = @owner_user AND company_id = @owner_company`,
      ).run({ ...subscriptionParams(s), owner_app: owner.app_id, owner_user: owner.user_id, owner_company: owner.company_id }).changes;
      if (changed > 0) {
        this.indexChannels(s);
        // Pending deliveries go to the new URL, so they count against its origin.
        this.q("UPDATE deliveries SET origin = ? WHERE subscription_id = ? AND status = 'pending' AND origin <> ?").run(originKey(s.callback_url), s.id, originKey(s.callback_url));
      }
      return changed > 0;
    });
  }

  async deleteSubscription(owner: Owner, id: string, reason: string, now: number): Promise<boolean> {
    return this.write(() => {
      const found = this.q('SELECT 1 FROM subscriptions WHERE id = ? AND app_id = ? AND user_id = ? AND company_id = ?').get(
        id, owner.app_id, owner.user_id, owner.company_id,
      );
      if (!found) return false;
      this.removeSubscription(id, reason, now);
      return true;
    });
  }

  /** Inside a write transaction: the subscription, its channel index, its pending deliveries. */
  private removeSubscription(id: string, reason: string, now: number): void {
    this.q(
      `UPDATE deliveries SET status = 'dropped', last_error = ?, next_attempt_at = NULL, lease_token = NULL, updated_at = ?
       WHERE subscription_id = ? AND status = 'pending'`,
    ).run(reason, now, id);
    this.q('DELETE FROM subscription_channels WHERE subscription_id = ?').run(id);
    this.q('DELETE FROM subscriptions WHERE id = ?').run(id);
  }

  async publishEvent(e: NewEvent, now: number, options?: PublishOptions): Promise<PublishResult> {
    if (options?.client !== undefined) {
      throw new HeraldError('VALIDATION_FAILED', 'transactional publish (publish with { client }) needs PostgreSQL; this Herald stores on SQLite');
    }
    return new Promise((resolve, reject) => {
      this.publishing.push({ e, now, resolve, reject });
      if (this.publishing.length === 1) setImmediate(() => this.commitPublishes());
    });
  }

  /**
   * Group commit: the publishes that arrived during one turn of the event loop are stored in
   * one transaction, each in its own savepoint (one failing leaves the others), and share
   * one fsync; each resolves only after that fsync. At 1,000 publishes/s one fsync each
   * (about 600 us here, on the event loop: better-sqlite3 is synchronous) took most of the
   * loop's time and put publish p99 past 100 ms; see bench/latency.ts. The COMMIT itself
   * does not wait for the disk (synchronous=NORMAL): WalSync fsyncs the WAL off the event
   * loop, and the publishes are answered once it has.
   */
  private commitPublishes(): void {
    const batch = this.publishing.splice(0, PUBLISH_BATCH);
    if (this.publishing.length > 0) setImmediate(() => this.commitPublishes());
    const results: Settled<PublishResult>[] = [];
    try {
      this.writeRelaxed(() => {
        for (const p of batch) {
          try {
            results.push({ ok: true, value: this.immediateTransaction(() => this.insertEvent(p.e, p.now)) });
          } catch (error) {
            results.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    if (!this.walSync) {
      batch.forEach((p, i) => settle(p, results[i]!));
      return;
    }
    const commit = { due: Math.min(...batch.map((p) => p.now)) };
    this.unsynced.push(commit);
    // Gone already when a later commit's sync (which covers this one) finished first.
    const at = () => this.unsynced.indexOf(commit);
    this.walSync.sync().then(() => {
      // An fdatasync started after this commit also covers the commits before it.
      this.unsynced.splice(0, at() + 1);
      batch.forEach((p, i) => settle(p, results[i]!));
    }, (error: unknown) => {
      // Stored, but not known to be on disk: answered as a failure, so the host publishes
      // again (its idempotency key, if it sent one, finds the stored event). Its deliveries
      // are claimable again: nothing would ever make them more durable than they are.
      if (at() >= 0) this.unsynced.splice(at(), 1);
      for (const p of batch) p.reject(error);
    });
  }

  /**
   * The latest `next_attempt_at` a claim at `now` may take. A publish's deliveries fall due at
   * its `now`, and they wait until the WAL sync that answers the publish has finished: sent
   * before it, a power cut could still take the event away after the receiver had it, and a
   * host that publishes it again (it got no answer) without an idempotency key would make a
   * second event, delivered under new webhook-ids no receiver can match with the first.
   * Expansion chunks commit with FULL (expandFanOut), so they need no such wait. The wait is
   * the sync's (0.6 ms at the median on this machine), and the publish's hint to the
   * dispatcher comes after it (service/publish.ts), so nothing waits for a poll.
   */
  private claimableBy(now: number): number {
    let by = now;
    for (const u of this.unsynced) by = Math.min(by, u.due - 1);
    return by;
  }

  /** Inside a write transaction: the event and one pending delivery per matching subscription. */
  private insertEvent(e: NewEvent, now: number): PublishResult {
    if (e.idempotency_key !== null) {
      const first = this.q('SELECT id FROM events WHERE company_id = ? AND idempotency_key = ?').get(e.company_id, e.idempotency_key) as Row | undefined;
      if (first) return { id: String(first.id), duplicate: true, deliveries: 0 };
    }
    this.q(
      `INSERT INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(e.id, e.company_id, e.channel, eventBody(e), e.user_id, e.idempotency_key, now);
    const deliveries = this.fanOut(firstChunk(e, now), now);
    return { id: e.id, duplicate: false, deliveries };
  }

  /**
   * Inside a write transaction: queues one chunk of FAN_OUT_CHUNK deliveries; when it filled,
   * (re)stores the event's `fanouts` row after its last subscription, otherwise removes it.
   * Answers how many it queued.
   */
  private fanOut(chunk: FanOutChunk, now: number): number {
    this.mayFallDue(chunk.due);
    const subs = this.q(FAN_OUT).pluck().all({ ...chunk, now, max: FAN_OUT_CHUNK }) as string[];
    if (subs.length < FAN_OUT_CHUNK) {
      if (chunk.after !== '') this.q('DELETE FROM fanouts WHERE event_id = ?').run(chunk.event_id);
      return subs.length;
    }
    // Subscription ids are ASCII, so JavaScript's order is SQLite's BINARY collation.
    const last = subs.reduce((a, b) => (b > a ? b : a));
    this.q(
      `INSERT INTO fanouts (event_id, after_subscription, created_at) VALUES (?, ?, ?)
       ON CONFLICT (event_id) DO UPDATE SET after_subscription = excluded.after_subscription`,
    ).run(chunk.event_id, last, now);
    return subs.length;
  }

  async expandFanOut(now: number): Promise<FanOutProgress | null> {
    // Polled: most polls find none, and need no write lock to tell.
    if (this.q('SELECT 1 FROM fanouts LIMIT 1').get() === undefined) return null;
    // Durable (FULL), unlike the dispatcher's other bookkeeping: a chunk lost to a power cut
    // after its deliveries were sent would be queued again under new delivery ids, duplicates
    // a receiver could not tell by webhook-id.
    return this.write(() => {
      const row = this.q(NEXT_FAN_OUT).get() as Row | undefined;
      if (!row) return null;
      const deliveries = this.fanOut(nextChunk(row), now);
      return { event_id: String(row.event_id), deliveries, done: deliveries < FAN_OUT_CHUNK };
    });
  }

  /**
   * Claims under leases kept in memory, not written to the deliveries: only this process
   * delivers from the file (it holds the DeliveryLock; another process's claim finds nothing
   * to do while it runs), so nobody else needs to see them. A lease lasts `leaseMs` like a
   * written one; a crash forgets them all with the lock, and the deliveries, still pending
   * and due, are claimed at once by the next holder. An outcome counts if its lease is the
   * one held (HeldLease), and its UPDATE checks that the delivery is still pending.
   *
   * Measured (bench, SQLite, 100 subscriptions x 1,000 events, wall time in the claim):
   * writing the leases was a write transaction per claim of about 17 deliveries, 1.05 ms of
   * the claim's 2.2 ms (BEGIN, COMMIT and its WAL pages 0.59 ms, the UPDATE of the leases
   * 0.31, the pick 0.16), 60 us per delivery; without it, 93 against 124 us per delivery.
   */
  async claimDueDeliveries(limit: number, now: number, leaseMs: number, room?: ClaimRoom): Promise<ClaimedDelivery[]> {
    if (this.deliveryLock && !this.deliveryLock.held()) return [];
    this.expireLeases(now - leaseMs);
    const dueBy = this.claimableBy(now);
    const window = this.dueWindow(limit, now, dueBy);
    const picked = this.pickDue(window, limit, now, dueBy, room ?? { perOrigin: Infinity, inFlight: new Map() });
    if (picked.length === 0) return [];
    const lease = newLease();
    const origins = new Map(picked.map((p) => [p.id, p.origin]));
    const claimed = this.selectClaimed(lease, CLAIMED, JSON.stringify(picked.map((p) => p.id)), dueBy);
    for (const d of claimed) this.hold(d.id, { lease, until: now + leaseMs, origin: origins.get(d.id)! });
    this.advanceCursor(window, now);
    return this.withPreviousSecrets(claimed, now);
  }

  /** Forgets the leases that ran out by `before` (no outcome is coming: its send ended long since). */
  private expireLeases(before: number): void {
    for (const [id, h] of this.held) if (h.until <= before) this.release(id, h);
  }

  /** Whether a delivery is leased now (a lease that ran out no longer keeps it from a claim). */
  private leased(id: string, now: number): boolean {
    return (this.held.get(id)?.until ?? 0) > now;
  }

  private hold(id: string, h: HeldLease): void {
    const before = this.held.get(id);
    if (before) this.release(id, before);
    this.held.set(id, h);
    this.heldByOrigin.set(h.origin, (this.heldByOrigin.get(h.origin) ?? 0) + 1);
  }

  private release(id: string, h: HeldLease): void {
    this.held.delete(id);
    this.dueCursor?.before.delete(id);
    const left = (this.heldByOrigin.get(h.origin) ?? 1) - 1;
    if (left === 0) this.heldByOrigin.delete(h.origin);
    else this.heldByOrigin.set(h.origin, left);
  }

  /**
   * The window of a claim: the oldest due deliveries after the DueCursor (all of them, held or
   * not, up to `scan`), and the `data_version` they were read at.
   */
  private dueWindow(limit: number, now: number, dueBy: number): DueWindow {
    const dataVersion = this.q('PRAGMA data_version').pluck().get() as number;
    let cursor = this.dueCursor;
    if (cursor && (cursor.validUntil <= now || cursor.dataVersion !== dataVersion)) cursor = this.dueCursor = null;
    // Past the cursor, only what was claimed out of order (the walk over origins) is held.
    const scan = limit * CLAIM_WINDOW + this.held.size - (cursor?.before.size ?? 0);
    // Rows as arrays: building objects took 117 us for 104 rows, arrays 75 (SQLite 3.53, this machine).
    if (!cursor) return { rows: this.q(DUE_WINDOW).raw(true).all(dueBy, scan) as DueWindowRow[], scan, dataVersion };
    const rows = cursor.due <= dueBy ? (this.q(DUE_TIED).raw(true).all(cursor.due, cursor.rowid, scan) as DueWindowRow[]) : [];
    if (rows.length < scan) rows.push(...(this.q(DUE_LATER).raw(true).all(cursor.due, dueBy, scan - rows.length) as DueWindowRow[]));
    return { rows, scan, dataVersion };
  }

  /**
   * A pending delivery, not held, may fall due at `due`: a DueCursor at that time or later is
   * dropped. A row written since the cursor was set has a later rowid than any it passed, so
   * only an earlier time would put it before the cursor; the same time is dropped too, which
   * also covers a row whose time changed and kept its rowid (a retry).
   */
  private mayFallDue(due: number): void {
    if (this.dueCursor && due <= this.dueCursor.due) this.dueCursor = null;
  }

  /** Moves the DueCursor past the window's leading deliveries that are held now (this claim's among them). */
  private advanceCursor(window: DueWindow, now: number): void {
    let cursor = this.dueCursor;
    for (const [id, , due, rowid] of window.rows) {
      const h = this.held.get(id);
      if (!h || h.until <= now) break;
      cursor ??= this.dueCursor = { due, rowid, validUntil: now + DUE_CURSOR_MS, dataVersion: window.dataVersion, before: new Set() };
      cursor.due = due;
      cursor.rowid = rowid;
      cursor.validUntil = Math.min(cursor.validUntil, h.until);
      cursor.before.add(id);
    }
  }

  /**
   * The due deliveries to claim, not held already, at most `room` per origin. First among
   * the CLAIM_WINDOW × limit oldest due deliveries after those held (dueWindow);
   * when those are all taken up by origins without room and more are due behind them (a
   * receiver that hangs, with its backlog at the head of the queue), origin by origin
   * instead: one index step per origin with pending deliveries, then each open origin's
   * oldest, so the cost follows the number of origins, never the length of a backlog.
   */
  private pickDue(window: DueWindow, limit: number, now: number, dueBy: number, room: ClaimRoom): DueRow[] {
    const { rows, scan } = window;
    const head = rows.filter(([id]) => !this.leased(id, now)).map(([id, origin]) => ({ id, origin }));
    const picked = firstWithRoom(head, limit, room);
    if (picked.length === limit || rows.length < scan) return picked;
    const firsts: { origin: string; due: number }[] = [];
    const next = this.q(NEXT_ORIGIN);
    for (let row = this.q(FIRST_ORIGIN).get() as Row | undefined; row; row = next.get(row.origin) as Row | undefined) {
      if (Number(row.next_attempt_at) <= dueBy) firsts.push({ origin: String(row.origin), due: Number(row.next_attempt_at) });
    }
    firsts.sort((a, b) => a.due - b.due);
    const out: DueRow[] = [];
    const dueOf = this.q(DUE_OF_ORIGIN);
    for (const { origin } of firsts) {
      const open = Math.min(room.perOrigin - (room.inFlight.get(origin) ?? 0), limit - out.length);
      if (open <= 0) continue;
      // heldByOrigin counts by the origin at claim time; a subscription whose URL changed
      // since may make this claim take fewer than `open`, until those leases end.
      const due = (dueOf.all(origin, dueBy, open + (this.heldByOrigin.get(origin) ?? 0)) as DueRow[]).filter((r) => !this.leased(r.id, now));
      out.push(...due.slice(0, open));
      if (out.length === limit) break;
    }
    return out;
  }

  /**
   * The deliveries `sql` selects (CLAIMED or LEASED) under `lease`, with the rows they name,
   * in one read transaction. Each of those rows is read once however many deliveries share it
   * (one event's deliveries share its event, app and company, and through one grant its user
   * and role), and kept for the next claims (ClaimCache) while config_version stays.
   * A LEFT JOIN of all seven tables per delivery read the event's body and every other
   * column again for each: measured (bench/store-loop.ts, 100 subscriptions x 320 events,
   * claims of 16), the claim took 24 us per delivery with the joined SELECT (20.7 of it in
   * that SELECT), 17.8 us reading each row once per claim.
   */
  private selectClaimed(lease: string, sql: string, ...params: unknown[]): ClaimedDelivery[] {
    return this.readTransaction(() => {
      const keys = this.q(sql).all(...params) as ClaimKey[];
      if (keys.length === 0) return [];
      // No version (the row deleted by hand) keeps nothing: at(NaN) empties the cache every time.
      const version = this.q('SELECT version FROM config_version').pluck().get();
      const cache = this.claimCache.at(typeof version === 'number' ? version : Number.NaN);
      const events = this.rowsById(cache.events, 'events', COLUMNS.events, keys.map((k) => k.event_id), toEvent, (r) => String(r.body).length);
      const subs = this.rowsById(cache.subscriptions, 'subscriptions', COLUMNS.subscriptions, keys.map((k) => k.subscription_id), toSubscription);
      const apps = this.rowsById(cache.apps, 'apps', COLUMNS.apps, keys.map((k) => k.app_id), toApp);
      const companies = this.rowsById(cache.companies, 'companies', COLUMNS.companies, keys.map((k) => k.company_id), toCompany);
      const grants = this.rowsById(cache.grants, 'grants', COLUMNS.grants, [...subs.values()].map((s) => s.grant_id), toGrant);
      const users = this.rowsById(cache.users, 'users', COLUMNS.users, [...subs.values()].map((s) => s.user_id), toUser);
      const roleOf = (u: User): Role | null => {
        const key = `${u.company_id}\0${u.role}`;
        if (!cache.roles.has(key)) {
          const row = this.q('SELECT company_id, name, permissions FROM roles WHERE company_id = ? AND name = ?').get(u.company_id, u.role) as Row | undefined;
          cache.roles.set(key, row ? toRole(row) : null);
        }
        return cache.roles.get(key) ?? null;
      };
      // Previous secrets are read after the transaction (withPreviousSecrets).
      return claimedDeliveries(lease, keys, { events, subscriptions: subs, apps, grants, companies, users, role: roleOf, previousSecrets: () => [] });
    });
  }

  /**
   * The rows of `table` whose id is among `ids`, mapped, by id: those in `kept` from there,
   * the others read (each once) and kept, weighed by `weigh`. Ids with no row are left out.
   */
  private rowsById<T>(kept: Bounded<T>, table: string, columns: readonly string[], ids: string[], map: (r: Row) => T, weigh?: (r: Row) => number): Map<string, T> {
    const out = new Map<string, T>();
    const missing = new Set<string>();
    for (const id of ids) {
      if (out.has(id)) continue;
      const row = kept.get(id);
      if (row === undefined) missing.add(id);
      else out.set(id, row);
    }
    if (missing.size === 0) return out;
    const select = `SELECT ${columns.join(', ')} FROM ${table}`;
    const rows = (missing.size === 1
      ? this.q(`${select} WHERE id = ?`).all(...missing)
      : this.q(`${select} WHERE id IN (SELECT value FROM json_each(?))`).all(JSON.stringify([...missing]))) as Row[];
    for (const r of rows) {
      const row = map(r);
      out.set(String(r.id), row);
      kept.set(String(r.id), row, weigh?.(r));
    }
    return out;
  }

  /**
   * The previous secrets (rotated, still in their grace period at `now`) each claimed
   * delivery's app signs with too, as PostgreSQL's claims read them.
   */
  private async withPreviousSecrets(claimed: ClaimedDelivery[], now: number): Promise<ClaimedDelivery[]> {
    const previous = new Map<string, Promise<string[]>>();
    for (const d of claimed) {
      if (!d.app) continue;
      if (!previous.has(d.app.id)) previous.set(d.app.id, this.oauth.previousSecrets(d.app.id, d.app.signature === 'standard_webhooks' ? 'signing' : 'client', now));
      d.previousSecrets = await previous.get(d.app.id)!;
    }
    return claimed;
  }

  async createPing(e: NewEvent, subscriptionId: string, appId: string, now: number, leaseMs: number): Promise<ClaimedDelivery> {
    this.mayFallDue(now + leaseMs);
    const lease = newLease();
    const id = newTimedId('dlv', now);
    this.write(() => {
      this.q('INSERT INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)').run(
        e.id, e.company_id, e.channel, eventBody(e), e.user_id, now,
      );
      this.q(
        `INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, lease_token, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, COALESCE((SELECT ${originSql('instr')} FROM subscriptions s WHERE s.id = ?), ''), 'pending', 0, ?, ?, ?, ?)`,
      ).run(id, e.id, subscriptionId, e.company_id, appId, e.channel, subscriptionId, now + leaseMs, lease, now, now);
    });
    return (await this.withPreviousSecrets(this.selectClaimed(lease, LEASED, id, lease), now))[0]!;
  }

  async recordOutcomes(outcomes: DeliveryOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    // Relaxed: an outcome lost to a power cut means the delivery is sent again (at least once).
    this.writeRelaxed(() => {
      const attempt = this.q(
        `INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt, started_at) DO NOTHING`,
      );
      // Positional parameters: binding by name looks each one up per run.
      const set = `UPDATE deliveries SET status = ?, attempts = attempts + ?, next_attempt_at = ?, lease_token = NULL,
           last_status_code = COALESCE(?, last_status_code), last_error = ?, updated_at = ?`;
      // Held in memory under this lease (claimDueDeliveries): still pending, unless something
      // else ended it meanwhile (a deleted subscription drops its deliveries). Otherwise the
      // lease is written on the row (a ping's), or it is not the current one: no change.
      const finishHeld = this.q(`${set} WHERE id = ? AND status = 'pending'`);
      const finishLeased = this.q(`${set} WHERE id = ? AND lease_token = ?`);
      const finish = (o: DeliveryOutcome, status: string, inc: number, next: number | null, code: number | null, error: string | null, now: number): number =>
        this.held.get(o.id)?.lease === o.lease
          ? finishHeld.run(status, inc, next, code, error, now, o.id).changes
          : finishLeased.run(status, inc, next, code, error, now, o.id, o.lease).changes;
      for (const o of outcomes) {
        if (o.kind === 'dropped') {
          finish(o, 'dropped', 0, null, null, o.reason, o.at);
          continue;
        }
        const a = o.attempt;
        attempt.run(a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.response_excerpt);
        const now = a.started_at + a.duration_ms;
        const status = o.kind === 'succeeded' ? 'succeeded' : o.kind === 'retry' ? 'pending' : 'failed';
        const next = o.kind === 'retry' ? o.next_attempt_at : null;
        if (next !== null) this.mayFallDue(next);
        const error = o.kind === 'gone' ? 'receiver answered 410 Gone: subscription removed' : a.error;
        const changed = finish(o, status, 1, next, a.status_code, error, now);
        if (o.kind === 'gone' && changed > 0) this.removeSubscription(o.subscription_id, 'subscription removed: receiver answered 410 Gone', now);
      }
    });
    for (const o of outcomes) {
      const h = this.held.get(o.id);
      if (h?.lease === o.lease) this.release(o.id, h);
    }
  }

  async nextDueAt(): Promise<number | null> {
    const row = this.q("SELECT MIN(next_attempt_at) AS at FROM deliveries WHERE status = 'pending'").get() as Row;
    return row.at === null ? null : Number(row.at);
  }

  async listDeliveries(f: DeliveryFilter): Promise<Delivery[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    for (const key of ['company_id', 'subscription_id', 'event_id', 'status'] as const) {
      if (f[key] !== undefined) {
        where.push(`${key} = ?`);
        params.push(f[key]);
      }
    }
    const sql = `SELECT * FROM deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT CAST(? AS INTEGER)`;
    return (this.q(sql).all(...params, f.limit) as Row[]).map(toDelivery);
  }

  async getDelivery(id: string): Promise<Delivery | null> {
    const row = this.q('SELECT * FROM deliveries WHERE id = ?').get(id) as Row | undefined;
    return row ? toDelivery(row) : null;
  }

  async listAttempts(deliveryId: string): Promise<Attempt[]> {
    return this.q('SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt, started_at').all(deliveryId) as Attempt[];
  }

  /** See retention.ts. */
  prune(before: number, batchSize: number, signal?: AbortSignal): Promise<number> {
    return prune(this, before, batchSize, signal);
  }
}

/** The first `limit` of `rows` (oldest first) whose origin still has room, counting those already picked. */
function firstWithRoom(rows: DueRow[], limit: number, room: ClaimRoom): DueRow[] {
  const taken = new Map<string, number>();
  const picked: DueRow[] = [];
  for (const row of rows) {
    const { origin } = row;
    const n = taken.get(origin) ?? room.inFlight.get(origin) ?? 0;
    if (n >= room.perOrigin) continue;
    picked.push(row);
    taken.set(origin, n + 1);
    if (picked.length === limit) break;
  }
  return picked;
}

function subscriptionParams(s: Subscription): Row {
  return {
    ...s,
    channels: JSON.stringify(s.channels),
    resource_type: s.resource?.type ?? null,
    resource_id: s.resource?.id ?? null,
    headers: JSON.stringify(s.headers),
  };
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('SQLITE_CONSTRAINT_UNIQUE');
}
