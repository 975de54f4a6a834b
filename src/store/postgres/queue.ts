import type { Pool } from 'pg';
import { HeraldError } from '../../domain/errors.js';
import { newLease, newTimedId, nextTick } from '../../domain/ids.js';
import { CLAIM_WINDOW, claimedDeliveries, COLUMNS, eventBody, FAN_OUT_CHUNK, originSql, toApp, toCompany, toEvent, toGrant, toRole, toSubscription, toUser } from '../rows.js';
import { originKey, type ClaimedDelivery, type ClaimRoom, type DeliveryOutcome, type FanOutProgress, type NewEvent, type PublishResult } from '../types.js';
import { prepared, preparedArrays, sql, transaction, uniqueViolation, type Queryable } from './db.js';
import { FAN_OUT_HINT } from './listen.js';

/** The channel of the LISTEN/NOTIFY latency hint: "deliveries were queued". */
export const NOTIFY_CHANNEL = 'herald_deliveries';

/**
 * Stores events and their deliveries atomically, several in one statement (PUBLISH_SQL). The
 * idempotency key is settled by the unique index, not by a read-then-insert: of two
 * concurrent publishers with the same key, the second's INSERT … ON CONFLICT waits for the
 * first to commit, inserts nothing, and then reads the first one's id. On Herald's own pool
 * the publishes are group-committed (PublishBatcher), and the NOTIFY hint to other processes
 * is not part of the statement: a transaction that sends a NOTIFY takes a database-wide lock
 * from its commit until the WAL is flushed, so publishes that each sent one committed one at
 * a time (1,000 publishes/s fell behind on this machine); the caller sends a throttled hint
 * after the commit (Hinter).
 *
 * With `client` (the transactional outbox) the statement runs on the host's client in the
 * host's open transaction, and Herald issues no BEGIN, COMMIT or ROLLBACK of its own: the
 * host's COMMIT makes the event, its deliveries and the NOTIFY (sent in the statement:
 * nothing of Herald's runs after the host's COMMIT); its ROLLBACK, none of them. A failing
 * statement aborts the host's transaction, which the host then rolls back.
 */
export async function publishInHostTransaction(e: NewEvent, now: number, client: unknown): Promise<PublishResult> {
  const [result] = await insertEvents(await inHostTransaction(client), [{ e, now }], false);
  if (result!.status === 'rejected') throw result!.reason;
  return result!.value;
}

/**
 * Group commit of the publishes on Herald's own pool: at most PUBLISH_LANES statements run
 * at once; publishes that arrive meanwhile wait and then go together, up to PUBLISH_BATCH,
 * in one PUBLISH_SQL statement: one round trip, one transaction, one WAL flush for all of
 * them. Under light load each publish runs alone at once, so nothing waits for company.
 * Each resolves only after its statement committed. A batch whose statement fails is run
 * again one publish at a time, so one bad event fails alone.
 *
 * Measured (bench/latency.ts, 1,000 publishes/s, one statement per publish on a pool of 10):
 * PostgreSQL's backends queued on the WAL flush (pg_stat_activity: LWLock WALWrite in 80%
 * of the publish samples) and publish p50 reached seconds once the 2 cores were busy.
 */
export class PublishBatcher {
  private readonly waiting: Publishing[] = [];
  private lanes = 0;

  constructor(private readonly pool: Pool) {}

  publish(e: NewEvent, now: number): Promise<PublishResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ e, now, resolve, reject });
      // The rest of this turn's publishes (one HTTP read can carry several) join the batch.
      if (this.waiting.length === 1 && this.lanes < PUBLISH_LANES) setImmediate(() => this.next());
    });
  }

  private next(): void {
    if (this.lanes >= PUBLISH_LANES || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, PUBLISH_BATCH);
    this.lanes++;
    void this.run(batch).finally(() => {
      this.lanes--;
      this.next();
    });
  }

  private async run(batch: Publishing[]): Promise<void> {
    try {
      settle(batch, await insertEvents(this.pool, batch, true));
    } catch {
      // Nothing of the batch was stored: again one at a time, so a bad one fails alone.
      await Promise.all(batch.map((p) => insertEvents(this.pool, [p], true).then((r) => settle([p], r), p.reject)));
    }
  }
}

interface Publishing {
  e: NewEvent;
  now: number;
  resolve: (r: PublishResult) => void;
  reject: (err: unknown) => void;
}

function settle(batch: Publishing[], results: PromiseSettledResult<PublishResult>[]): void {
  batch.forEach((p, i) => {
    const r = results[i]!;
    if (r.status === 'fulfilled') p.resolve(r.value);
    else p.reject(r.reason);
  });
}

/** Publishes running at once on the pool; more wait and go together. */
export const PUBLISH_LANES = 4;
/** Most publishes in one statement. */
const PUBLISH_BATCH = 100;

/**
 * The host's client, once it is known to be inside a transaction block. Given a Pool or a
 * client in autocommit, every statement would commit on its own (an event could be stored
 * without its deliveries), so that is refused. The first statement of a transaction is the
 * only one whose statement_timestamp() equals transaction_timestamp(): after BEGIN, any
 * later statement starts strictly later.
 */
async function inHostTransaction(client: unknown): Promise<Queryable> {
  if (typeof client !== 'object' || client === null || typeof (client as { query?: unknown }).query !== 'function') {
    throw new HeraldError('VALIDATION_FAILED', 'client must be a pg Client or PoolClient inside the host\'s transaction');
  }
  const db = client as Queryable;
  const { rows } = await sql(db, 'SELECT transaction_timestamp() < statement_timestamp() AS in_block');
  if (rows[0]?.in_block !== true) {
    throw new HeraldError(
      'VALIDATION_FAILED',
      'publish with { client } needs a client inside an open transaction (after BEGIN), not a Pool or a client in autocommit',
    );
  }
  return db;
}

/**
 * The subscriptions of the event in row `i` (company_id, channel, resources jsonb,
 * object_type, object_id) that get a delivery, with the rule of matchesResource in
 * domain/subscription.ts: no resource, or the event names the subscription's resource in
 * `resources`, or the event's object is that resource. At most `max`, in subscription id
 * order after `after` (subscription_channels' key order), created no later than `before`:
 * one chunk of a FanOutChunk.
 */
const matching = (i: string, after: string, before: string, max: string) => `SELECT s.id, s.app_id, ${originSql('strpos')} AS origin
  FROM subscription_channels c JOIN subscriptions s ON s.id = c.subscription_id
  WHERE c.company_id = ${i}.company_id AND c.channel = ${i}.channel AND c.subscription_id > ${after} AND s.created_at <= ${before}
    AND (s.resource_type IS NULL OR s.resource_id = ${i}.resources ->> s.resource_type OR (s.resource_type = ${i}.object_type AND s.resource_id = ${i}.object_id))
  ORDER BY c.subscription_id LIMIT ${max}`;

/**
 * The id of the delivery of event `event` to subscription `subscription`, time-ordered like
 * newTimedId's: `dlv_`, a tick of this process in base 36 (nextTick: one per event or
 * fan-out chunk, so the deliveries of the events of one batch do not interleave), and 22 hex
 * digits (88 bits) of the MD5 of the event's and the subscription's ids. An event has at most one delivery per
 * subscription (a fan-out's chunks never repeat a subscription), so the ids are unique; a
 * repeat would fail on the primary key, never pass as a second delivery. Delivery ids are
 * not secrets: receivers see them (webhook-id). It was 16 bytes of gen_random_uuid() in
 * base64url: 3.5 us of PostgreSQL's time per delivery (100,000 in 346 ms), this 0.34 us.
 */
const deliveryId = (tick: string, event: string, subscription: string) =>
  `'dlv_' || ${tick} || left(md5(${event} || '/' || ${subscription}), 22)`;

/**
 * Publishes in one statement, so in one round trip (a publish was five: BEGIN, the event,
 * the subscriptions, the deliveries, COMMIT; at 1,000 publishes/s PostgreSQL publishes
 * queued for seconds, see bench/latency.ts). The events' fields come as arrays ($1…$11, one
 * element per event, `ord` its position). `ev` inserts those whose idempotency key is free
 * (two with one key in the batch: the first is stored, the second conflicts with it), and
 * `stored` are their rows of `input`, joined once (left to the planner, the join to `ev`
 * was a filter over every event's every matching subscription: 24,000 comparisons for 16
 * events to 100 subscriptions, 10 of the statement's 30 ms); `queued` inserts the first
 * chunk of each one's deliveries (`matching`, at most $12: FAN_OUT_CHUNK) and `enqueued`
 * their queue rows (migration 009), and `fanned` stores a `fanouts` row for each event
 * whose chunk filled, so the dispatcher queues the rest (expandFanOut). Answers per event,
 * in order: whether it was stored and how many deliveries it queued. With `notify` (in the
 * host's transaction) the NOTIFY is sent when deliveries were queued, and delivered at COMMIT.
 */
const publishSql = (notify: boolean) => `WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::jsonb[], $9::text[], $10::text[], $11::text[])
    WITH ORDINALITY AS t(id, company_id, channel, body, user_id, idempotency_key, now, resources, object_type, object_id, tick, ord)
), ev AS (
  INSERT INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at)
  SELECT id, company_id, channel, body, user_id, idempotency_key, now FROM input ORDER BY ord
  ON CONFLICT (company_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
), stored AS MATERIALIZED (
  SELECT i.* FROM ev JOIN input i ON i.id = ev.id
), queued AS (
  INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
  SELECT ${deliveryId('i.tick', 'i.id', 'm.id')}, i.id, m.id, i.company_id, m.app_id, i.channel, m.origin, 'pending', 0, i.now, i.now, i.now
  FROM stored i
  CROSS JOIN LATERAL (${matching('i', "''", `${Number.MAX_SAFE_INTEGER}`, '$12')}) m
  RETURNING id, event_id, subscription_id, origin, next_attempt_at
), enqueued AS (
  INSERT INTO delivery_queue (id, origin, next_attempt_at) SELECT id, origin, next_attempt_at FROM queued
), fanned AS (
  INSERT INTO fanouts (event_id, after_subscription, created_at)
  SELECT q.event_id, max(q.subscription_id), min(i.now) FROM queued q JOIN input i ON i.id = q.event_id
  GROUP BY q.event_id HAVING count(*) >= $12
  RETURNING event_id
)
SELECT ev.id IS NOT NULL AS stored, COALESCE(q.n, 0)::int AS deliveries${notify ? `,
       (SELECT pg_notify('${NOTIFY_CHANNEL}', CASE WHEN EXISTS (SELECT 1 FROM fanned) THEN '${FAN_OUT_HINT}' ELSE '' END)
        WHERE EXISTS (SELECT 1 FROM queued)) AS hint` : ''}
FROM input i LEFT JOIN ev ON ev.id = i.id
LEFT JOIN (SELECT event_id, count(*) AS n FROM queued GROUP BY event_id) q ON q.event_id = i.id
ORDER BY i.ord`;
const PUBLISH_SQL = publishSql(false);
const PUBLISH_NOTIFY_SQL = publishSql(true);

/**
 * Runs the publish statement for `batch`: prepared on Herald's own pool (autocommit: one
 * statement, one transaction), or plain in the host's transaction. Throws when the statement
 * fails (then nothing was stored); otherwise one settled answer per event, in order (a taken
 * key's lookup of the first event can fail alone).
 */
async function insertEvents(db: Queryable, batch: { e: NewEvent; now: number }[], own: boolean): Promise<PromiseSettledResult<PublishResult>[]> {
  const cols: unknown[][] = Array.from({ length: 11 }, () => []);
  for (const { e, now } of batch) {
    const row = [
      e.id, e.company_id, e.channel, eventBody(e), e.user_id, e.idempotency_key, now,
      JSON.stringify(e.resources), e.channel.slice(0, e.channel.indexOf('.')), String(e.object.id), nextTick(now),
    ];
    row.forEach((v, i) => cols[i]!.push(v));
  }
  const params = [...cols, FAN_OUT_CHUNK];
  const { rows } = own ? await prepared(db, 'publish', PUBLISH_SQL, params) : await sql(db, PUBLISH_NOTIFY_SQL, params);
  return Promise.allSettled(batch.map(async ({ e }, i) => {
    if (rows[i]!.stored) return { id: e.id, duplicate: false, deliveries: Number(rows[i]!.deliveries) };
    const first = await sql(db, 'SELECT id FROM events WHERE company_id = $1 AND idempotency_key = $2', [e.company_id, e.idempotency_key]);
    if (!first.rows[0]) throw new Error(`event with idempotency key "${e.idempotency_key}" conflicted but cannot be read`);
    return { id: String(first.rows[0].id), duplicate: true, deliveries: 0 };
  }));
}

/**
 * Store.expandFanOut in one statement, so one round trip and one transaction (autocommit):
 * `f` takes the oldest unfinished fan-out nobody else is expanding (its row locked SKIP
 * LOCKED; a row another process moved since this statement's snapshot is read as it is now,
 * PostgreSQL's rule for FOR UPDATE), `i` its event's fields as nextChunk reads them from the
 * body (`::json`, not jsonb, so a numeric object id keeps the text JSON.stringify gave it,
 * as String() does), `queued`/`enqueued` its next chunk of deliveries and their queue rows,
 * and `moved`/`removed` the move of its cursor, or the removal of its row when the chunk
 * did not fill. $1 is the time, $2 a tick (nextTick), $3 FAN_OUT_CHUNK.
 *
 * It was five statements in a transaction (BEGIN, the row, the chunk, the cursor, COMMIT).
 * Measured (bench fan-out, PostgreSQL, 1 event to 10,000 subscriptions: the 39 chunks after
 * the publish's, timed by a preload wrapping pg's query): 583-624 ms that way, 15 ms a chunk
 * of which its INSERT was 6.7-7.9; 303-356 ms as one statement. The deliveries' rate did not
 * move beyond the noise (three alternating pairs: 8,564-11,041/s, before 9,835-11,497/s).
 */
const EXPAND_SQL = `WITH f AS (
  SELECT f.event_id, f.after_subscription, e.company_id, e.channel, e.body::json AS body, e.created_at
  FROM fanouts f JOIN events e ON e.id = f.event_id ORDER BY f.created_at LIMIT 1 FOR UPDATE OF f SKIP LOCKED
), i AS (
  SELECT event_id AS id, company_id, channel, (body -> 'resources')::jsonb AS resources,
         split_part(channel, '.', 1) AS object_type, body -> 'object' ->> 'id' AS object_id, after_subscription, created_at
  FROM f
), queued AS (
  INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
  SELECT ${deliveryId('$2', 'i.id', 'm.id')}, i.id, m.id, i.company_id, m.app_id, i.channel, m.origin, 'pending', 0, i.created_at, $1, $1
  FROM i CROSS JOIN LATERAL (${matching('i', 'i.after_subscription', 'i.created_at', '$3')}) m
  RETURNING id, subscription_id, origin, next_attempt_at
), enqueued AS (
  INSERT INTO delivery_queue (id, origin, next_attempt_at) SELECT id, origin, next_attempt_at FROM queued
), chunk AS (
  SELECT count(*)::int AS n, max(subscription_id) AS last FROM queued
), moved AS (
  UPDATE fanouts SET after_subscription = chunk.last FROM i, chunk WHERE fanouts.event_id = i.id AND chunk.n >= $3
), removed AS (
  DELETE FROM fanouts USING i, chunk WHERE fanouts.event_id = i.id AND chunk.n < $3
)
SELECT i.id AS event_id, chunk.n FROM i, chunk`;

/**
 * Store.expandFanOut: the next chunk of the oldest unfinished fan-out nobody else is
 * expanding, and the move of its cursor, in one transaction (EXPAND_SQL).
 */
export async function expandFanOut(pool: Pool, now: number): Promise<FanOutProgress | null> {
  const { rows: [q] } = await prepared(pool, 'expand-fan-out', EXPAND_SQL, [now, nextTick(now), FAN_OUT_CHUNK]);
  if (!q) return null;
  const deliveries = Number(q.n);
  return { event_id: String(q.event_id), deliveries, done: deliveries < FAN_OUT_CHUNK };
}

/**
 * The hint to other processes' dispatchers after publishes committed on Herald's own pool:
 * sent at once, then at most once per HINT_INTERVAL_MS however many publishes come (one
 * more at the end of the interval if any came during it). It is only a hint: a lost one
 * (a crash between the commit and the NOTIFY) leaves the deliveries to the next poll.
 */
export class Hinter {
  private sending = false;
  private again = false;
  /** A hint held back by the interval was for publishes that left a fan-out. */
  private fanOut = false;

  constructor(private readonly pool: Pool) {}

  /** `fanOut`: the publishes left part of a fan-out to queue; the payload says so (FAN_OUT_HINT). */
  hint(fanOut = false): void {
    this.fanOut ||= fanOut;
    if (this.sending) {
      this.again = true;
      return;
    }
    this.sending = true;
    const payload = this.fanOut ? FAN_OUT_HINT : '';
    this.fanOut = false;
    void sql(this.pool, `SELECT pg_notify('${NOTIFY_CHANNEL}', $1)`, [payload])
      .catch(() => undefined)
      .finally(() => setTimeout(() => {
        this.sending = false;
        if (this.again) {
          this.again = false;
          this.hint();
        }
      }, HINT_INTERVAL_MS).unref());
  }
}

const HINT_INTERVAL_MS = 5;

/** The columns of the claimed rows that claimJson reads (the rows they name are read by these ids). */
const CLAIMED_RETURNING = 'd.id, d.attempts, d.event_id, d.subscription_id, d.app_id, d.company_id';

/**
 * The CTE `claimed` of the queue rows that the CTE `leased` (with `id`, and `origin` when
 * `origin`) just leased: their deliveries' rows as claimedRows reads them. A claim writes only
 * the queue row; the delivery's own row is read by primary key.
 */
const claimedOf = (origin: boolean) => `claimed AS (
  SELECT ${CLAIMED_RETURNING}${origin ? ', l.origin' : ''} FROM leased l JOIN deliveries d ON d.id = l.id
)`;

/**
 * Everything the dispatcher needs for the deliveries of the CTE `claimed` (its rows as
 * CLAIMED_RETURNING gives them), read in the claim's own statement: one JSON value (claimedFrom
 * reads it) holding the deliveries and, once each, the events, subscriptions, apps (with
 * their previous, rotated and unexpired at `now`, secrets of the signing kind), grants,
 * companies, users and roles they name. A claim and a second SELECT of its rows by id were
 * two statements and two round trips: per 100,000 deliveries (bench, 100 subscriptions x
 * 1,000 events) 4,250 claims and 4,248 SELECTs, the SELECTs 1.8 s of PostgreSQL's execution
 * time (pg_stat_statements), each re-reading its rows by primary key.
 *
 * It was one row per delivery with every table joined (53 columns): most rows of a claim
 * share their event, app, grant, company, user and role, and each was written out by
 * PostgreSQL, and parsed by pg, once per delivery. Measured (bench/store-loop.ts, 100
 * subscriptions, three alternating runs each, us per delivery, wall): claims of 64,
 * 35-55 against 47-70 with the joined rows; claims of 16, 72-90 against 77-100. PostgreSQL's
 * own execution time is the same (EXPLAIN ANALYZE of the prepared claim, claims of 16:
 * median 0.68 ms either way); what went is pg's parsing of 53 text columns per row.
 * End to end (bench, 100 subscriptions x 2,000 events, HERALD_CONCURRENCY 256, alternating
 * runs): 12,036, 12,387 and 11,647 deliveries/s against 10,764, 11,115 and 11,036, and the
 * hanging-receiver ratio 1.05, 1.06 and 1.12 against 1.09, 1.13 and 1.08. (With 64 slots the
 * hanging ratio had measured 0.71-1.11 with these claims, so they were reverted once; with
 * 256 it holds.)
 */
const claimJson = (now: string) => `(
  WITH s AS MATERIALIZED (
    SELECT ${COLUMNS.subscriptions.join(', ')} FROM subscriptions WHERE id IN (SELECT subscription_id FROM claimed)
  ), u AS MATERIALIZED (
    SELECT ${COLUMNS.users.join(', ')} FROM users WHERE id IN (SELECT user_id FROM s)
  )
  SELECT json_build_object(
    'deliveries', (SELECT json_agg(json_build_array(d.id, d.attempts, d.event_id, d.subscription_id, d.app_id, d.company_id)) FROM claimed d),
    'events', (SELECT json_agg(x) FROM (SELECT ${COLUMNS.events.join(', ')} FROM events WHERE id IN (SELECT event_id FROM claimed)) x),
    'subscriptions', (SELECT json_agg(s) FROM s),
    'apps', (SELECT json_agg(x) FROM (
      SELECT ${COLUMNS.apps.map((c) => `a.${c}`).join(', ')},
             ARRAY(SELECT k.secret FROM app_secrets k
                   WHERE k.app_id = a.id AND k.expires_at > ${now}
                     AND k.kind = CASE a.signature WHEN 'standard_webhooks' THEN 'signing' ELSE 'client' END
                   ORDER BY k.created_at DESC) AS previous_secrets
      FROM apps a WHERE a.id IN (SELECT app_id FROM claimed)) x),
    'grants', (SELECT json_agg(x) FROM (SELECT ${COLUMNS.grants.join(', ')} FROM grants WHERE id IN (SELECT grant_id FROM s)) x),
    'companies', (SELECT json_agg(x) FROM (SELECT ${COLUMNS.companies.join(', ')} FROM companies WHERE id IN (SELECT company_id FROM claimed)) x),
    'users', (SELECT json_agg(u) FROM u),
    'roles', (SELECT json_agg(x) FROM (SELECT company_id, name, permissions FROM roles WHERE (company_id, name) IN (SELECT company_id, role FROM u)) x)
  )
)`;
const claimedRows = (now: string) => `SELECT ${claimJson(now)} AS claim`;

/**
 * The claim, in one statement (graphile-worker's and pg-boss's shape): the CTE locks up to
 * `limit` due rows with FOR UPDATE SKIP LOCKED, so concurrent claimers in any number of
 * processes pass over each other's rows instead of queueing behind them, and the UPDATE
 * stamps the lease on exactly the rows locked. It autocommits: no transaction is held while
 * the dispatcher sends. It reads and writes the narrow `delivery_queue` (migration 009), whose
 * index delivery_queue_due holds only pending deliveries in due order.
 *
 * Measured (PostgreSQL 15, 2 vCPU, 20,000 due rows, batches of 100, this statement alone):
 * SKIP LOCKED 17,900 rows/s with one claimer and 22,300 with eight; plain FOR UPDATE 17,300
 * and 15,000 (the eight queue on the same first rows, then re-check and skip them). Without
 * the row lock (SELECT then UPDATE) two claimers take the same rows: the concurrency test in
 * test/integration/postgres-story.test.ts fails on that.
 */
export const CLAIM_SQL = `WITH due AS (
  SELECT id FROM delivery_queue
  WHERE next_attempt_at <= $1
  ORDER BY next_attempt_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), leased AS (
  UPDATE delivery_queue q SET next_attempt_at = $1 + $3, lease_token = $4
  FROM due WHERE q.id = due.id
  RETURNING q.id
), ${claimedOf(false)}
${claimedRows('$1')}`;

/**
 * CLAIM_SQL taking at most `$7` minus what is in flight (`$6`, a JSON object by origin) per
 * receiver origin, among the `$5` oldest due deliveries (`window`): rows ranked per origin
 * with ROW_NUMBER. The ranking cannot take row locks itself (no FOR UPDATE beside a window
 * function), so `due` locks the picked rows and the UPDATE re-checks them as locked (FOR
 * UPDATE returns a row's latest version); one a concurrent claim holds is skipped. Answers
 * how many rows the window held (`seen`), what it leased per origin (`taken`), for
 * claimDueDeliveries to decide whether to look past the window, and the leased ids.
 *
 * Neither `due` nor the UPDATE puts a condition on the table beside the id, so both can only
 * find the picked rows by primary key (or a whole-table scan, which costs more than a probe
 * per row at any size). When the queue was `deliveries` and the re-check was written on it,
 * the generic plan of the prepared statement (made while the table held a few rows, without
 * statistics: `status = 'pending'` estimated at 0.5%) scanned every due row through the
 * (origin, due) index and compared each with the picked ones: every claim cost grew with the
 * backlog. auto_explain, fan-out of one event to 10,000 subscriptions:
 * 789 rows scanned and 29,944 comparisons for 38 claimed, 11 ms a claim; 904-954
 * deliveries/s against over 3,000/s for events to 100 subscriptions.
 */
export const CLAIM_WITH_ROOM_SQL = `WITH win AS (
  SELECT id, origin, next_attempt_at FROM delivery_queue
  WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $5
), ranked AS (
  SELECT id, origin, next_attempt_at, ROW_NUMBER() OVER (PARTITION BY origin ORDER BY next_attempt_at) AS rn FROM win
), pick AS (
  SELECT r.id FROM ranked r LEFT JOIN json_each_text($6::json) f ON f.key = r.origin
  WHERE r.rn <= $7 - COALESCE(f.value::int, 0)
  ORDER BY r.next_attempt_at LIMIT $2
), due AS (
  SELECT id, next_attempt_at FROM delivery_queue WHERE id IN (SELECT id FROM pick)
  FOR UPDATE SKIP LOCKED
), leased AS (
  UPDATE delivery_queue q SET next_attempt_at = $1 + $3, lease_token = $4
  FROM due WHERE q.id = due.id AND due.next_attempt_at <= $1
  RETURNING q.id, q.origin
), ${claimedOf(true)}, head AS (
  SELECT (SELECT count(*) FROM win)::int AS seen,
         (SELECT json_object_agg(origin, n) FROM (SELECT origin, count(*)::int AS n FROM claimed GROUP BY origin) t) AS taken
)
SELECT head.seen, head.taken, ${claimJson('$1')} AS claim FROM head`;

/**
 * The claim past the window, origin by origin, for when the oldest due deliveries all belong
 * to origins without room (a receiver that hangs, its backlog at the head of the queue):
 * `origins` walks delivery_queue_due_origin with one index probe per origin that has pending
 * deliveries (a loose index scan: PostgreSQL has no skip scan), giving each its earliest;
 * each due origin with room gives its oldest, up to its room, oldest origins first. The
 * cost follows the number of origins, never the length of a backlog. Same parameters as
 * CLAIM_WITH_ROOM_SQL, less the window: `$5` in flight, `$6` the cap.
 */
export const CLAIM_BY_ORIGIN_SQL = `WITH RECURSIVE origins AS (
  (SELECT origin, next_attempt_at FROM delivery_queue ORDER BY origin, next_attempt_at LIMIT 1)
  UNION ALL
  SELECT n.origin, n.next_attempt_at FROM origins o CROSS JOIN LATERAL (
    SELECT origin, next_attempt_at FROM delivery_queue WHERE origin > o.origin
    ORDER BY origin, next_attempt_at LIMIT 1
  ) n
), open AS (
  SELECT o.origin, o.next_attempt_at AS first_due, $6 - COALESCE(f.value::int, 0) AS room
  FROM origins o LEFT JOIN json_each_text($5::json) f ON f.key = o.origin
  WHERE o.next_attempt_at <= $1 AND $6 - COALESCE(f.value::int, 0) > 0
), pick AS (
  SELECT p.id FROM open o CROSS JOIN LATERAL (
    SELECT id, next_attempt_at FROM delivery_queue
    WHERE origin = o.origin AND next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT o.room
  ) p
  ORDER BY o.first_due, p.next_attempt_at LIMIT $2
), due AS (
  SELECT id, next_attempt_at FROM delivery_queue WHERE id IN (SELECT id FROM pick)
  FOR UPDATE SKIP LOCKED
), leased AS (
  UPDATE delivery_queue q SET next_attempt_at = $1 + $3, lease_token = $4
  FROM due WHERE q.id = due.id AND due.next_attempt_at <= $1
  RETURNING q.id
), ${claimedOf(false)}
${claimedRows('$1')}`;

/**
 * Where claims with room start: normally with the window (CLAIM_WITH_ROOM_SQL), falling back
 * to the walk over origins when the window is all origins without room. After such a
 * fallback the head of the queue is probably still blocked (a receiver that hangs keeps its
 * backlog there), so for HEAD_BLOCKED_MS claims start with the walk and skip the window that
 * would find nothing. Measured (bench hanging scenario, PostgreSQL, 300 events): the window
 * ran before each of 1,465 walks and claimed 2,114 of 28,498 deliveries.
 */
export interface ClaimState {
  walkUntil: number;
}

const HEAD_BLOCKED_MS = 1000;

const CLAIMS = { claim: CLAIM_SQL, claim_with_room: CLAIM_WITH_ROOM_SQL, claim_by_origin: CLAIM_BY_ORIGIN_SQL };

/**
 * With `outcomes` (none a 410 Gone: see recordOutcomes), the first statement records them too
 * (`recording`). Once it has, a failing second statement (the walk) ends the claim with what
 * the first one leased instead of throwing: the caller would record those outcomes again.
 */
export async function claimDueDeliveries(
  pool: Pool, limit: number, now: number, leaseMs: number, room: ClaimRoom | undefined, state: ClaimState, outcomes: DeliveryOutcome[] = [],
): Promise<ClaimedDelivery[]> {
  const lease = newLease();
  let carried = outcomes.length > 0 ? outcomeParams(outcomes) : null;
  const run = (name: keyof typeof CLAIMS, params: unknown[]) => {
    if (!carried) return preparedArrays(pool, name, CLAIMS[name], params);
    const all = [...params, ...carried];
    carried = null;
    return preparedArrays(pool, `${name}_recording`, RECORDING_CLAIMS[name], all);
  };
  if (!room) return claimedFrom(lease, await run('claim', [now, limit, leaseMs, lease]));
  const inFlight: Record<string, number> = Object.fromEntries(room.inFlight);
  const walk = async (n: number) =>
    claimedFrom(lease, await run('claim_by_origin', [now, n, leaseMs, lease, JSON.stringify(inFlight), room.perOrigin]));
  if (now < state.walkUntil) return walk(limit);
  const window = limit * CLAIM_WINDOW;
  const first = await run('claim_with_room', [now, limit, leaseMs, lease, window, JSON.stringify(inFlight), room.perOrigin]);
  const claimed = claimedFrom(lease, first);
  const head = first.rows[0]!;
  if (claimed.length < limit && Number(head[first.names.indexOf('seen')]) === window) {
    state.walkUntil = now + HEAD_BLOCKED_MS;
    const taken = (head[first.names.indexOf('taken')] ?? {}) as Record<string, number>;
    for (const [origin, n] of Object.entries(taken)) inFlight[origin] = (inFlight[origin] ?? 0) + n;
    try {
      claimed.push(...(await walk(limit - claimed.length)));
    } catch (err) {
      if (outcomes.length === 0) throw err;
    }
  }
  return claimed;
}

/** The claim's JSON value (claimJson): the deliveries, and each row they name once. */
interface ClaimJson {
  deliveries: [id: string, attempts: number, event_id: string, subscription_id: string, app_id: string, company_id: string][] | null;
  events: Row[] | null;
  subscriptions: Row[] | null;
  apps: (Row & { previous_secrets: string[] | null })[] | null;
  grants: Row[] | null;
  companies: Row[] | null;
  users: Row[] | null;
  roles: Row[] | null;
}
type Row = Record<string, unknown>;

/** The claimed deliveries of a statement whose `claim` column is claimJson's value; each row mapped once per claim. */
function claimedFrom(lease: string, result: { rows: unknown[][]; names: string[] }): ClaimedDelivery[] {
  const claim = result.rows[0]?.[result.names.indexOf('claim')] as ClaimJson | null | undefined;
  if (!claim?.deliveries) return [];
  const byId = <T>(rows: Row[] | null, map: (r: Row) => T) => new Map((rows ?? []).map((r) => [String(r.id), map(r)]));
  const roles = new Map((claim.roles ?? []).map((r) => [`${String(r.company_id)}/${String(r.name)}`, toRole(r)]));
  const secrets = byId(claim.apps, (r) => (r.previous_secrets ?? []) as string[]);
  const keys = claim.deliveries.map(([id, attempts, event_id, subscription_id, app_id, company_id]) => ({ id, attempts, event_id, subscription_id, app_id, company_id }));
  return claimedDeliveries(lease, keys, {
    events: byId(claim.events, toEvent),
    subscriptions: byId(claim.subscriptions, toSubscription),
    apps: byId(claim.apps, toApp),
    grants: byId(claim.grants, toGrant),
    companies: byId(claim.companies, toCompany),
    users: byId(claim.users, toUser),
    role: (u) => roles.get(`${u.company_id}/${u.role}`) ?? null,
    previousSecrets: (appId) => secrets.get(appId) ?? [],
  });
}

/** A delivery just leased under `lease` (a ping's), as claimedRows reads it. */
async function selectClaimed(db: Queryable, lease: string, id: string): Promise<ClaimedDelivery> {
  const [d] = claimedFrom(lease, await preparedArrays(
    db,
    'select_claimed',
    `WITH claimed AS (SELECT ${CLAIMED_RETURNING} FROM delivery_queue q JOIN deliveries d ON d.id = q.id WHERE q.id = $1 AND q.lease_token = $2) ${claimedRows('$3')}`,
    [id, lease, Date.now()],
  ));
  if (!d) throw new Error(`delivery ${id} is not leased under the lease just given`);
  return d;
}

export async function createPing(
  pool: Pool, e: NewEvent, subscriptionId: string, appId: string, now: number, leaseMs: number,
): Promise<ClaimedDelivery> {
  const lease = newLease();
  const id = newTimedId('dlv', now);
  await transaction(pool, async (db) => {
    await sql(
      db,
      'INSERT INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6)',
      [e.id, e.company_id, e.channel, eventBody(e), e.user_id, now],
    );
    await sql(
      db,
      `WITH d AS (
         INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, COALESCE((SELECT ${originSql('strpos')} FROM subscriptions s WHERE s.id = $3), ''), 'pending', 0, $7, $9, $9)
         RETURNING id, origin
       )
       INSERT INTO delivery_queue (id, origin, next_attempt_at, lease_token) SELECT id, origin, $7, $8 FROM d`,
      [id, e.id, subscriptionId, e.company_id, appId, e.channel, now + leaseMs, lease, now],
    );
  });
  return selectClaimed(pool, lease, id);
}

/**
 * Inside a transaction: the subscriptions, their channel index and their pending deliveries
 * (dropped, and out of the queue).
 * Unlike SQLite's single writer, a concurrent publish that read a subscription before this
 * commits can still queue a delivery to it afterwards; the dispatcher drops such a delivery
 * at send time ("subscription deleted"), so nothing is sent. Locking each subscription row
 * in every publish (FOR SHARE) would close that window at the price of a row-lock write per
 * matching subscription per event.
 */
export async function removeSubscriptions(db: Queryable, ids: string[], reason: string, now: number): Promise<void> {
  if (ids.length === 0) return;
  // The queue rows first, then the deliveries: the order in which outcomes lock them
  // (OUTCOMES_SQL), so a removal racing an outcome of the same subscription (several 410s at
  // once, a revoked grant under load) waits for it instead of deadlocking with it.
  await sql(
    db,
    `WITH dequeued AS (
       DELETE FROM delivery_queue
       WHERE id = ANY(ARRAY(SELECT id FROM deliveries WHERE subscription_id = ANY($3::text[]) AND status = 'pending'))
       RETURNING id
     )
     UPDATE deliveries SET status = 'dropped', last_error = $1, next_attempt_at = NULL, updated_at = $2
     WHERE id = ANY(ARRAY(SELECT id FROM dequeued)) AND status = 'pending'`,
    [reason, now, ids],
  );
  await sql(db, 'DELETE FROM subscription_channels WHERE subscription_id = ANY($1::text[])', [ids]);
  await sql(db, 'DELETE FROM subscriptions WHERE id = ANY($1::text[])', [ids]);
}

const GONE_REASON = 'subscription removed: receiver answered 410 Gone';

/**
 * One statement per batch rather than two per outcome (OUTCOMES_SQL): all attempts inserted
 * and all state changes applied from arrays, each guarded by the lease so a stale holder
 * changes nothing. A statement is its own transaction, so a batch without a 410 Gone is one
 * round trip (it was four: BEGIN, insert, update, COMMIT). A 410 Gone removes its
 * subscription (dropping that subscription's other pending deliveries) before the outcomes
 * after it are applied, so the batch ends exactly as SQLite's row-by-row loop does; such a
 * batch is split there, in one transaction, which costs extra statements only for the rare 410.
 * `once`: an attempt of the batch is known to be logged already (see outcomeCtes).
 */
export async function recordOutcomes(pool: Pool, outcomes: DeliveryOutcome[], once = false): Promise<void> {
  if (outcomes.length === 0) return;
  if (!outcomes.some((o) => o.kind === 'gone')) {
    await applySegment(pool, outcomes, once).catch((err: unknown) => {
      if (once || !attemptLoggedAlready(err)) throw err;
      return applySegment(pool, outcomes, true);
    });
    return;
  }
  // Rare (a 410 Gone), and a failed statement would end the transaction: `once` from the start.
  await transaction(pool, async (db) => {
    let segment: DeliveryOutcome[] = [];
    for (const o of outcomes) {
      segment.push(o);
      if (o.kind !== 'gone') continue;
      const changed = await applySegment(db, segment, true);
      segment = [];
      if (changed.has(o.id)) await removeSubscriptions(db, [o.subscription_id], GONE_REASON, o.attempt.started_at + o.attempt.duration_ms);
    }
    await applySegment(db, segment, true);
  });
}

/**
 * The attempts (parameters 1-7 after `after`) and the state changes (8-15) of a batch of
 * outcomes, from arrays (outcomeParams). The lease is checked on the queue row: a retry
 * moves it to its next due time (`retried`), any other outcome deletes it (`ended`); only
 * the deliveries whose queue row that changed are updated. That update changes no indexed column of `deliveries`, so with the room its
 * fillfactor leaves it stays on its page (HOT) and writes no index entry (migration 009).
 * With `once`, an attempt already logged is skipped (ON CONFLICT DO NOTHING); without it the
 * statement fails on delivery_attempts_once (migration 011), and recordOutcomes and
 * recordAndClaim run it again with `once`. A batch is recorded again when its statement
 * failed, which may have been after it committed; only then is an attempt found logged.
 * Why not `once` always: PostgreSQL inserts each row speculatively under ON CONFLICT.
 * Measured (bench/store-loop.ts, PostgreSQL, two alternating runs of three rounds each): the
 * recording took 39.0 us per delivery on average with it, 34.2 without.
 */
const outcomeCtes = (after: number, once = false): string => {
  const p = (n: number) => `$${after + n}`;
  return `attempts AS (
  INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
  SELECT * FROM unnest(${p(1)}::text[], ${p(2)}::int[], ${p(3)}::bigint[], ${p(4)}::int[], ${p(5)}::int[], ${p(6)}::text[], ${p(7)}::text[])${once ? `
  ON CONFLICT (delivery_id, attempt, started_at) DO NOTHING` : ''}
), v AS (
  SELECT * FROM unnest(${p(8)}::text[], ${p(9)}::text[], ${p(10)}::text[], ${p(11)}::int[], ${p(12)}::bigint[], ${p(13)}::int[], ${p(14)}::text[], ${p(15)}::bigint[])
    AS v(id, lease, status, inc, next, code, error, now)
), retried AS (
  UPDATE delivery_queue q SET next_attempt_at = v.next, lease_token = NULL
  FROM v WHERE q.id = v.id AND q.lease_token = v.lease AND v.status = 'pending'
  RETURNING q.id, v.lease
), ended AS (
  DELETE FROM delivery_queue q USING v
  WHERE q.id = v.id AND q.lease_token = v.lease AND v.status <> 'pending'
  RETURNING q.id, v.lease
)`;
};
const OUTCOME_UPDATE = `UPDATE deliveries d SET status = v.status, attempts = d.attempts + v.inc, next_attempt_at = v.next,
  last_status_code = COALESCE(v.code, d.last_status_code), last_error = v.error, updated_at = v.now
FROM v JOIN (SELECT * FROM retried UNION ALL SELECT * FROM ended) k ON k.id = v.id AND k.lease = v.lease
WHERE d.id = v.id
RETURNING d.id`;
const OUTCOMES_SQL = `WITH ${outcomeCtes(0)}
${OUTCOME_UPDATE}`;
const OUTCOMES_ONCE_SQL = `WITH ${outcomeCtes(0, true)}
${OUTCOME_UPDATE}`;

/** Whether a recording failed because an attempt of its batch is logged already (see outcomeCtes). */
export function attemptLoggedAlready(err: unknown): boolean {
  return uniqueViolation(err) === 'delivery_attempts_once';
}

/**
 * `claim` (one of the claim statements) recording a batch of outcomes too, in the same
 * statement: the claim's parameters come first, the outcomes' follow. One round
 * trip instead of two; the dispatcher records most outcomes this way, with the claim that the
 * slots they freed call for. Measured (bench, PostgreSQL, 100 x 1,000): 2,096 claims and 1,597
 * outcome statements per 50,000 deliveries, each a round trip that stalls Herald's main thread
 * in the socket write while the backend runs (14-25% of its wall time).
 *
 * One snapshot for both: the claim sees the queue rows the outcomes delete or move still
 * leased (not due), so it does not claim them. The claim is the statement's main query, so it
 * runs first; the outcomes' CTEs, which it does not read, run after it. A row whose lease
 * had expired before its outcome came can be claimed again here; its outcome then finds the
 * row changed by this statement and is not applied (its attempt is still logged), and the
 * delivery is sent again: at-least-once. Locks are taken queue rows first, then deliveries,
 * as everywhere (removeSubscriptions). Two processes whose claims each take a row whose
 * lease the other's outcomes hold can still deadlock (sends outlasting the lease in both):
 * PostgreSQL aborts one statement, and its dispatcher records those outcomes again.
 */
const recording = (claim: string): string => {
  const [, withList, rest] = /^(WITH (?:RECURSIVE )?)([\s\S]*)$/.exec(claim)!;
  const claimParams = Math.max(...[...claim.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  return `${withList}${outcomeCtes(claimParams)}, recorded AS (
${OUTCOME_UPDATE}
), ${rest}`;
};
const RECORDING_CLAIMS: typeof CLAIMS = {
  claim: recording(CLAIMS.claim),
  claim_with_room: recording(CLAIMS.claim_with_room),
  claim_by_origin: recording(CLAIMS.claim_by_origin),
};

/** Applies outcomes whose order does not matter among themselves; returns the ids changed. */
async function applySegment(db: Queryable, segment: DeliveryOutcome[], once = false): Promise<Set<string>> {
  if (segment.length === 0) return new Set();
  const { rows } = await prepared(db, once ? 'outcomes_once' : 'outcomes', once ? OUTCOMES_ONCE_SQL : OUTCOMES_SQL, outcomeParams(segment));
  return new Set(rows.map((r) => String(r.id)));
}

/** OUTCOMES_SQL's parameters for outcomes whose order does not matter among themselves. */
function outcomeParams(segment: DeliveryOutcome[]): unknown[] {
  const a = { id: [] as string[], n: [] as number[], started: [] as number[], ms: [] as number[], code: [] as (number | null)[], error: [] as (string | null)[], excerpt: [] as (string | null)[] };
  const f = { id: [] as string[], lease: [] as string[], status: [] as string[], inc: [] as number[], next: [] as (number | null)[], code: [] as (number | null)[], error: [] as (string | null)[], now: [] as number[] };
  const seen = new Set<string>();
  for (const o of segment) {
    let row: [status: string, inc: number, next: number | null, code: number | null, error: string | null, now: number];
    if (o.kind === 'dropped') {
      row = ['dropped', 0, null, null, o.reason, o.at];
    } else {
      const t = o.attempt;
      a.id.push(t.delivery_id); a.n.push(t.attempt); a.started.push(t.started_at); a.ms.push(t.duration_ms);
      a.code.push(t.status_code); a.error.push(t.error); a.excerpt.push(t.response_excerpt);
      const status = o.kind === 'succeeded' ? 'succeeded' : o.kind === 'retry' ? 'pending' : 'failed';
      const error = o.kind === 'gone' ? 'receiver answered 410 Gone: subscription removed' : t.error;
      row = [status, 1, o.kind === 'retry' ? o.next_attempt_at : null, t.status_code, error, t.started_at + t.duration_ms];
    }
    // Row by row, a repeat of the same lease would find it already cleared: only the first counts.
    const key = `${o.id}\u0000${o.lease}`;
    if (seen.has(key)) continue;
    seen.add(key);
    f.id.push(o.id); f.lease.push(o.lease); f.status.push(row[0]); f.inc.push(row[1]);
    f.next.push(row[2]); f.code.push(row[3]); f.error.push(row[4]); f.now.push(row[5]);
  }
  return [
    a.id, a.n, a.started, a.ms, a.code, a.error, a.excerpt,
    f.id, f.lease, f.status, f.inc, f.next, f.code, f.error, f.now,
  ];
}
