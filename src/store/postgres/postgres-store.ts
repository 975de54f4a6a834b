import pg from 'pg';
import type { ResourceType } from '../../domain/catalog.js';
import { HeraldError } from '../../domain/errors.js';
import { loadMigrations } from '../migrations.js';
import {
  COLUMNS, leftFanOut, prefixed, toApp, toCompany, toDelivery, toGrant, toResourceType, toRole, toSubscription, toUser, unprefix,
} from '../rows.js';
import {
  originKey,
  type App, type Attempt, type ClaimedDelivery, type ClaimRoom, type Company, type Delivery, type DeliveryFilter, type DeliveryOutcome,
  type FanOutProgress, type Grant, type NewAccessToken, type NewEvent, type Owner, type PublishOptions, type PublishResult, type Role, type SecretKind,
  type Store, type Subscription, type TokenContext, type User,
} from '../types.js';
import { sql, transaction, uniqueViolation, type Queryable, type Row } from './db.js';
import { listen } from './listen.js';
import { PostgresOAuthStore } from './oauth.js';
import * as queue from './queue.js';
import { prune } from './retention.js';

/**
 * Held (transaction-scoped) while migrating, so several Herald processes may start at once
 * on a fresh database: the first applies the migrations, the others wait and find them done.
 */
const MIGRATION_LOCK = 0x4865_7261_6c64; // "Herald"

function openPool(url: string, extra: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, keepAlive: true, ...extra });
  // An idle client whose connection dies emits 'error' on the pool, which would otherwise
  // crash the process; the pool drops that client and the next query opens a new one.
  pool.on('error', () => undefined);
  // A checked-out client (in transaction(), between statements) has no pool listener: a
  // server shutdown (57P01) or a dropped socket arriving then would be an unhandled 'error'
  // event and crash the process. With this one the statement in progress or the next one
  // fails instead, and the pool discards the client on release (it is no longer queryable).
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * The shared engine: any number of Herald processes on one PostgreSQL database. Every
 * multi-statement write is one transaction on one pooled client; the queue claims with
 * FOR UPDATE SKIP LOCKED (queue.ts) and publishes a NOTIFY hint that listen() hears.
 */
export class PostgresStore implements Store {
  readonly engine = 'postgres';
  readonly capabilities = { supportsSkipLocked: true, supportsListenNotify: true };
  readonly oauth: PostgresOAuthStore;
  private readonly pool: pg.Pool;
  /**
   * The dispatcher's bookkeeping (claims, their reads, outcomes, a 410's subscription
   * removal) and the NOTIFY hint, on connections of their own committed with
   * synchronous_commit=off: PostgreSQL answers before the WAL is flushed, so these
   * statements never wait for an fsync. Losing the last of them to a crash of the
   * PostgreSQL server (not of Herald) makes a claimed delivery due again or re-sends a sent
   * one, which at-least-once allows; the database stays consistent. Events and everything
   * else acknowledged to a client go through `pool` or `publishPool`, committed durably
   * before the answer.
   * (SQLite's twin is writeRelaxed.) Measured: at 1,000 publishes/s on this 2-core machine,
   * publishes and outcomes shared one pool and waited on each other's WAL flushes.
   *
   * enable_bitmapscan=off on these connections: with statistics from when the table was
   * small (autovacuum analyses it at most once a minute), the claim's window over the due
   * index was planned as a bitmap scan that reads every due row and sorts them, so
   * each claim cost grew with the backlog, the dispatcher fell further behind and publishes
   * queued behind it (EXPLAIN ANALYZE mid-run: 2,674 due rows read for a LIMIT of 128,
   * 5.8 ms; as an index scan in order, 1.6 ms). Every statement here finds its rows by an
   * index in order or by primary key. bench/latency.ts at 1,000 publishes/s, one run each:
   * publish p99 176 ms with bitmap scans, 58 ms without.
   *
   * enable_seqscan=off too, for the same reason: the generic plan of the outcomes statement
   * (recordOutcomes), made from the statistics of a small table, joined the batch to a
   * sequential scan of `deliveries`, so every batch of outcomes read the whole table and
   * its cost grew with the history kept. auto_explain at 1,000 publishes/s: 8,144 rows read
   * for 19 outcomes, 3.3 ms. pg_stat_statements over 15 s at that rate: outcomes 2.73 ms a
   * batch with sequential scans allowed, 0.29 ms without; the claimed rows' SELECT 2.43 ms,
   * 0.24 ms; PostgreSQL's execution time in all 11 s, 4.1 s.
   *
   * plan_cache_mode=force_generic_plan: with statistics on the table, PostgreSQL's own choice
   * for the prepared claim was a custom plan at every execution (pg_prepared_statements: 30
   * custom, 0 generic), since the generic plan's LIMIT estimate looks dearer; so every claim
   * was planned again, and the plan came out the same. Without sequential and bitmap scans a
   * generic plan can only take the indexes. Measured (32-row claims on 30,000 due rows, one
   * client, round trip included, alternating): 4.9-5.8 ms per claim, 3.1-3.8 ms generic.
   */
  private readonly queuePool: pg.Pool;
  /**
   * Publishes and fan-out chunks: committed durably like `pool`, and planned like `queuePool`
   * (generic plans, no sequential or bitmap scans), since they too run often and on tables
   * that grow faster than autovacuum analyses them. Without statistics on a freshly filled
   * subscriptions table, the publish matched each subscription_channels row against a
   * sequential scan of `subscriptions` (auto_explain, 16 events to 100 subscriptions: 17 ms
   * for the matching, 2.5 ms by primary key); and left to choose, PostgreSQL planned the
   * publish again at 6,114 of 16,111 runs at 1,000 publishes/s (pg_stat_statements: 0.53 ms
   * a plan, 3.2 s of planning in the 30 s run). bench/store-loop.ts, publish: 34 -> 25 us
   * per delivery.
   */
  private readonly publishPool: pg.Pool;
  private readonly hinter: queue.Hinter;
  private readonly publisher: queue.PublishBatcher;
  private readonly listeners = new Set<() => Promise<void>>();
  /** This process's claims' memory of a blocked queue head (queue.ClaimState). */
  private readonly claimState: queue.ClaimState = { walkUntil: 0 };

  constructor(private readonly url: string) {
    this.pool = openPool(url, {});
    this.queuePool = openPool(url, {
      max: 4,
      options: '-c synchronous_commit=off -c enable_bitmapscan=off -c enable_seqscan=off -c plan_cache_mode=force_generic_plan',
    });
    this.publishPool = openPool(url, {
      max: queue.PUBLISH_LANES + 1,
      options: '-c enable_bitmapscan=off -c enable_seqscan=off -c plan_cache_mode=force_generic_plan',
    });
    this.hinter = new queue.Hinter(this.queuePool);
    this.publisher = new queue.PublishBatcher(this.publishPool);
    this.oauth = new PostgresOAuthStore(this.pool);
  }

  private one(text: string, params: unknown[], db: Queryable = this.pool): Promise<Row | undefined> {
    return sql(db, text, params).then((r) => r.rows[0]);
  }

  async migrate(): Promise<void> {
    await transaction(this.pool, async (db) => {
      await db.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      await db.query('CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const done = new Set((await db.query('SELECT version FROM schema_migrations')).rows.map((r: Row) => String(r.version)));
      for (const m of loadMigrations('postgres')) {
        if (done.has(m.version)) continue;
        await db.query(m.sql);
        await sql(db, 'INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [m.version, Date.now()]);
      }
    });
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners].map((stop) => stop()));
    await Promise.all([this.pool.end(), this.queuePool.end(), this.publishPool.end()]);
  }

  /** LISTEN/NOTIFY on a dedicated connection; see listen.ts. */
  async listen(onWork: (fanOut: boolean) => void): Promise<() => Promise<void>> {
    const stop = await listen(this.url, queue.NOTIFY_CHANNEL, onWork);
    const unlisten = async () => {
      this.listeners.delete(unlisten);
      await stop();
    };
    this.listeners.add(unlisten);
    return unlisten;
  }

  async settingIfAbsent(key: string, value: string): Promise<string> {
    const inserted = await this.one('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value', [key, value]);
    // A separate statement sees a concurrent inserter's committed row; the INSERT's own snapshot would not.
    const row = inserted ?? (await this.one('SELECT value FROM settings WHERE key = $1', [key]));
    return String(row!.value);
  }

  async putResourceType(t: ResourceType): Promise<void> {
    try {
      await transaction(this.pool, async (db) => {
        const other = await this.one('SELECT type FROM resource_types WHERE plural = $1 AND type <> $2', [t.plural, t.type], db);
        if (other) throw new HeraldError('CONFLICT', `plural "${t.plural}" is already used by resource type "${String(other.type)}"`);
        await sql(
          db,
          `INSERT INTO resource_types (type, plural, actions, parents, position)
           VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1 FROM resource_types))
           ON CONFLICT (type) DO UPDATE SET plural = excluded.plural, actions = excluded.actions, parents = excluded.parents`,
          [t.type, t.plural, JSON.stringify(t.actions), JSON.stringify(t.parents)],
        );
      });
    } catch (err) {
      // Only reachable in a race with another process declaring the same plural.
      if (uniqueViolation(err) === 'resource_types_plural_key') throw new HeraldError('CONFLICT', `plural "${t.plural}" is already used by another resource type`);
      throw err;
    }
  }

  async listResourceTypes(): Promise<ResourceType[]> {
    return (await sql(this.pool, 'SELECT * FROM resource_types ORDER BY position')).rows.map(toResourceType);
  }

  async createCompany(c: Company): Promise<void> {
    try {
      await sql(this.pool, 'INSERT INTO companies (id, name, sub_domain, created_at) VALUES ($1, $2, $3, $4)', [c.id, c.name, c.sub_domain, c.created_at]);
    } catch (err) {
      if (uniqueViolation(err) === 'companies_sub_domain_key') throw new HeraldError('SUB_DOMAIN_TAKEN', `sub_domain "${c.sub_domain}" is already taken`);
      throw err;
    }
  }

  async getCompany(id: string): Promise<Company | null> {
    const row = await this.one('SELECT * FROM companies WHERE id = $1', [id]);
    return row ? toCompany(row) : null;
  }

  async putRole(role: Role): Promise<void> {
    await sql(
      this.pool,
      `INSERT INTO roles (company_id, name, permissions) VALUES ($1, $2, $3)
       ON CONFLICT (company_id, name) DO UPDATE SET permissions = excluded.permissions`,
      [role.company_id, role.name, JSON.stringify(role.permissions)],
    );
  }

  async getRole(companyId: string, name: string): Promise<Role | null> {
    const row = await this.one('SELECT * FROM roles WHERE company_id = $1 AND name = $2', [companyId, name]);
    return row ? toRole(row) : null;
  }

  async createUser(u: User, passwordHash: string | null): Promise<void> {
    try {
      await sql(
        this.pool,
        `INSERT INTO users (id, company_id, email, name, role, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [u.id, u.company_id, u.email, u.name, u.role, passwordHash, u.created_at, u.updated_at],
      );
    } catch (err) {
      if (uniqueViolation(err) === 'users_company_email_key') throw new HeraldError('EMAIL_TAKEN', `email "${u.email}" is already used in this company`);
      throw err;
    }
  }

  async getUser(companyId: string, id: string): Promise<User | null> {
    const row = await this.one('SELECT * FROM users WHERE company_id = $1 AND id = $2', [companyId, id]);
    return row ? toUser(row) : null;
  }

  async getUserById(id: string): Promise<User | null> {
    const row = await this.one('SELECT * FROM users WHERE id = $1', [id]);
    return row ? toUser(row) : null;
  }

  async setUserPassword(companyId: string, id: string, passwordHash: string, now: number): Promise<boolean> {
    return (await this.one('UPDATE users SET password_hash = $1, updated_at = $2 WHERE company_id = $3 AND id = $4 RETURNING id', [passwordHash, now, companyId, id])) !== undefined;
  }

  async setUserRole(companyId: string, id: string, role: string, now: number): Promise<User | null> {
    const row = await this.one('UPDATE users SET role = $1, updated_at = $2 WHERE company_id = $3 AND id = $4 RETURNING *', [role, now, companyId, id]);
    return row ? toUser(row) : null;
  }

  async createApp(a: App): Promise<void> {
    await sql(
      this.pool,
      `INSERT INTO apps (id, name, url, redirect_uris, signature, client_id, client_secret, signing_secret, public_client, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [a.id, a.name, a.url, JSON.stringify(a.redirect_uris), a.signature, a.client_id, a.client_secret, a.signing_secret, a.public_client === true, a.created_at],
    );
  }

  async getApp(id: string): Promise<App | null> {
    const row = await this.one('SELECT * FROM apps WHERE id = $1', [id]);
    return row ? toApp(row) : null;
  }

  async rotateAppSecret(appId: string, kind: SecretKind, secret: string, graceUntil: number, now: number): Promise<App | null> {
    const column = kind === 'client' ? 'client_secret' : 'signing_secret';
    return transaction(this.pool, async (db) => {
      // FOR UPDATE: two concurrent rotations must each keep the secret the other replaced.
      const row = await this.one('SELECT * FROM apps WHERE id = $1 FOR UPDATE', [appId], db);
      if (!row) return null;
      await sql(db, 'INSERT INTO app_secrets (app_id, kind, secret, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)', [appId, kind, row[column], graceUntil, now]);
      await sql(db, `UPDATE apps SET ${column} = $1 WHERE id = $2`, [secret, appId]);
      return toApp({ ...row, [column]: secret });
    });
  }

  async createGrant(g: Grant, token: NewAccessToken): Promise<void> {
    await transaction(this.pool, async (db) => {
      await sql(
        db,
        `INSERT INTO grants (id, app_id, user_id, company_id, scope, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [g.id, g.app_id, g.user_id, g.company_id, g.scope, g.created_at, g.revoked_at],
      );
      await insertTokens(db, [token]);
    });
  }

  async getGrant(id: string): Promise<Grant | null> {
    const row = await this.one('SELECT * FROM grants WHERE id = $1', [id]);
    return row ? toGrant(row) : null;
  }

  async revokeGrant(id: string, now: number): Promise<boolean> {
    return transaction(this.pool, async (db) => {
      const changed = await sql(db, 'UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now, id]);
      if (changed.rowCount === 0) return false;
      await sql(db, 'DELETE FROM access_tokens WHERE grant_id = $1', [id]);
      const subs = await sql(db, 'SELECT id FROM subscriptions WHERE grant_id = $1', [id]);
      await queue.removeSubscriptions(db, subs.rows.map((r) => String(r.id)), 'grant revoked', now);
      return true;
    });
  }

  async insertAccessTokens(tokens: NewAccessToken[]): Promise<void> {
    if (tokens.length > 0) await insertTokens(this.pool, tokens);
  }

  async findAccessToken(hash: string): Promise<TokenContext | null> {
    const row = await this.one(
      `SELECT t.expires_at, ${prefixed('g', COLUMNS.grants)}, ${prefixed('a', COLUMNS.apps)}, ${prefixed('u', COLUMNS.users)}
       FROM access_tokens t
       JOIN grants g ON g.id = t.grant_id AND g.revoked_at IS NULL
       JOIN apps a ON a.id = g.app_id
       JOIN users u ON u.id = g.user_id
       WHERE t.hash = $1`,
      [hash],
    );
    if (!row) return null;
    return {
      grant: toGrant(unprefix(row, 'g')!),
      app: toApp(unprefix(row, 'a')!),
      user: toUser(unprefix(row, 'u')!),
      expires_at: Number(row.expires_at),
    };
  }

  async createSubscription(s: Subscription): Promise<void> {
    await transaction(this.pool, async (db) => {
      await sql(
        db,
        `INSERT INTO subscriptions (id, grant_id, app_id, user_id, company_id, channels, callback_url, resource_type, resource_id, headers, content_type, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [s.id, s.grant_id, s.app_id, s.user_id, s.company_id, ...subscriptionValues(s), s.created_at, s.updated_at],
      );
      await indexChannels(db, s);
    });
  }

  async getSubscription(owner: Owner, id: string): Promise<Subscription | null> {
    const row = await this.one(
      'SELECT * FROM subscriptions WHERE id = $1 AND app_id = $2 AND user_id = $3 AND company_id = $4',
      [id, owner.app_id, owner.user_id, owner.company_id],
    );
    return row ? toSubscription(row) : null;
  }

  async listSubscriptions(owner: Owner): Promise<Subscription[]> {
    const { rows } = await sql(
      this.pool,
      'SELECT * FROM subscriptions WHERE app_id = $1 AND user_id = $2 AND company_id = $3 ORDER BY created_at, id',
      [owner.app_id, owner.user_id, owner.company_id],
    );
    return rows.map(toSubscription);
  }

  async updateSubscription(owner: Owner, s: Subscription): Promise<boolean> {
    return transaction(this.pool, async (db) => {
      const changed = await sql(
        db,
        `UPDATE subscriptions SET channels = $1, callback_url = $2, resource_type = $3, resource_id = $4, headers = $5, content_type = $6,
           updated_at = $7
         WHERE id = $8 AND app_id = $9 AND user_id = $10 AND company_id = $11`,
        [...subscriptionValues(s), s.updated_at, s.id, owner.app_id, owner.user_id, owner.company_id],
      );
      if (changed.rowCount === 0) return false;
      await indexChannels(db, s);
      // Pending deliveries go to the new URL, so they count against its origin.
      // The queue rows first, then the deliveries: the outcomes' order (queue.removeSubscriptions).
      await sql(
        db,
        `WITH moved AS (
           UPDATE delivery_queue SET origin = $1
           WHERE id = ANY(ARRAY(SELECT id FROM deliveries WHERE subscription_id = $2 AND status = 'pending')) AND origin <> $1
           RETURNING id
         )
         UPDATE deliveries SET origin = $1 WHERE id = ANY(ARRAY(SELECT id FROM moved))`,
        [originKey(s.callback_url), s.id],
      );
      return true;
    });
  }

  async deleteSubscription(owner: Owner, id: string, reason: string, now: number): Promise<boolean> {
    return transaction(this.pool, async (db) => {
      const found = await this.one(
        'SELECT 1 FROM subscriptions WHERE id = $1 AND app_id = $2 AND user_id = $3 AND company_id = $4 FOR UPDATE',
        [id, owner.app_id, owner.user_id, owner.company_id],
        db,
      );
      if (!found) return false;
      await queue.removeSubscriptions(db, [id], reason, now);
      return true;
    });
  }

  async publishEvent(event: NewEvent, now: number, options?: PublishOptions): Promise<PublishResult> {
    if (options?.client !== undefined) return queue.publishInHostTransaction(event, now, options.client);
    const result = await this.publisher.publish(event, now);
    if (result.deliveries > 0) this.hinter.hint(leftFanOut(result));
    return result;
  }

  expandFanOut(now: number): Promise<FanOutProgress | null> {
    // Committed durably: a chunk lost to a crash of the server after its deliveries were
    // sent would be queued again under new delivery ids, duplicates a receiver could not tell
    // by webhook-id.
    return queue.expandFanOut(this.publishPool, now);
  }

  claimDueDeliveries(limit: number, now: number, leaseMs: number, room?: ClaimRoom): Promise<ClaimedDelivery[]> {
    return queue.claimDueDeliveries(this.queuePool, limit, now, leaseMs, room, this.claimState);
  }

  async recordAndClaim(outcomes: DeliveryOutcome[], limit: number, now: number, leaseMs: number, room?: ClaimRoom): Promise<ClaimedDelivery[]> {
    let once = false;
    if (!outcomes.some((o) => o.kind === 'gone')) {
      try {
        return await queue.claimDueDeliveries(this.queuePool, limit, now, leaseMs, room, this.claimState, outcomes);
      } catch (err) {
        // An attempt of the batch is logged already (an earlier recording of it committed but
        // seemed to fail): the statement changed nothing; record them apart, as below.
        if (!queue.attemptLoggedAlready(err)) throw err;
        once = true;
      }
    }
    // A 410 Gone is recorded in a transaction of its own (recordOutcomes). Once it is, a
    // failing claim must not throw: the caller would record the outcomes again. The claim
    // is only missed: the dispatcher claims again on its next turn.
    await queue.recordOutcomes(this.queuePool, outcomes, once);
    return this.claimDueDeliveries(limit, now, leaseMs, room).catch(() => []);
  }

  createPing(event: NewEvent, subscriptionId: string, appId: string, now: number, leaseMs: number): Promise<ClaimedDelivery> {
    return queue.createPing(this.pool, event, subscriptionId, appId, now, leaseMs);
  }

  recordOutcomes(outcomes: DeliveryOutcome[]): Promise<void> {
    return queue.recordOutcomes(this.queuePool, outcomes);
  }

  async nextDueAt(): Promise<number | null> {
    const row = await this.one('SELECT MIN(next_attempt_at) AS at FROM delivery_queue', []);
    return row?.at === null || row?.at === undefined ? null : Number(row.at);
  }

  async listDeliveries(f: DeliveryFilter): Promise<Delivery[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    for (const key of ['company_id', 'subscription_id', 'event_id', 'status'] as const) {
      if (f[key] !== undefined) {
        params.push(f[key]);
        where.push(`${key} = $${params.length}`);
      }
    }
    params.push(f.limit);
    const text = `SELECT * FROM deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
    return (await sql(this.pool, text, params)).rows.map(toDelivery);
  }

  async getDelivery(id: string): Promise<Delivery | null> {
    const row = await this.one('SELECT * FROM deliveries WHERE id = $1', [id]);
    return row ? toDelivery(row) : null;
  }

  async listAttempts(deliveryId: string): Promise<Attempt[]> {
    const { rows } = await sql(this.pool, 'SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, started_at', [deliveryId]);
    return rows.map((r) => ({
      delivery_id: String(r.delivery_id),
      attempt: Number(r.attempt),
      started_at: Number(r.started_at),
      duration_ms: Number(r.duration_ms),
      status_code: r.status_code === null ? null : Number(r.status_code),
      error: r.error === null ? null : String(r.error),
      response_excerpt: r.response_excerpt === null ? null : String(r.response_excerpt),
    }));
  }

  /** See retention.ts. */
  prune(before: number, batchSize: number, signal?: AbortSignal): Promise<number> {
    return prune(this.pool, before, batchSize, signal);
  }
}

/** channels, callback_url, resource_type, resource_id, headers, content_type: in that order. */
function subscriptionValues(s: Subscription): unknown[] {
  return [JSON.stringify(s.channels), s.callback_url, s.resource?.type ?? null, s.resource?.id ?? null, JSON.stringify(s.headers), s.content_type];
}

async function indexChannels(db: Queryable, s: Subscription): Promise<void> {
  await sql(db, 'DELETE FROM subscription_channels WHERE subscription_id = $1', [s.id]);
  await sql(
    db,
    'INSERT INTO subscription_channels (company_id, channel, subscription_id) SELECT $1, channel, $2 FROM unnest($3::text[]) AS channel',
    [s.company_id, s.id, s.channels],
  );
}

/** One statement for any number of tokens. */
async function insertTokens(db: Queryable, tokens: NewAccessToken[]): Promise<void> {
  await sql(
    db,
    `INSERT INTO access_tokens (hash, grant_id, expires_at, created_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])`,
    [tokens.map((t) => t.hash), tokens.map((t) => t.grant_id), tokens.map((t) => t.expires_at), tokens.map((t) => t.created_at)],
  );
}
