import { randomBytes } from 'node:crypto';

/**
 * Prefixed random ids (`sub_…`, `evt_…`), Stripe-style: the prefix tells a reader what an id
 * names, and 16 random bytes (128 bits) make them unguessable across tenants.
 */
export type IdPrefix = 'co' | 'usr' | 'app' | 'grt' | 'sub' | 'evt' | 'dlv' | 'att' | 'tok';

/**
 * Ids draw their 16 bytes from a 4 KiB block of the same CSPRNG, refilled when used up (as
 * Node's crypto.randomUUID does): a randomBytes call per id cost 6 us, 4% of Herald's time
 * when a publish fans out to 100 subscriptions. Each byte is used once.
 */
const ENTROPY_BYTES = 4096;
let entropy = Buffer.alloc(0);
let offset = 0;

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${random16()}`;
}

/**
 * A time-ordered id for the rows written at the highest rate (events, deliveries), like
 * Svix's KSUID-based ids: the prefix, a tick as 11 base-36 digits (fixed width, so ids sort
 * as plain strings), then the same 16 random bytes as newId. A tick is the creation time in
 * thousandths of a millisecond, and one more than the last tick this process used when that
 * is later: ids made by one process only ever increase, also within one millisecond (the
 * random bytes keep them unguessable; the tick is no secret, the rows carry `created_at`).
 *
 * Why the order matters: ids made together land side by side in every index keyed by them
 * (the primary keys, delivery_attempts' delivery_id). Random ids scattered each batch over
 * the whole index: measured (bench, SQLite, 100 subscriptions x 500 events) a commit of the
 * dispatcher's bookkeeping wrote half as many pages with time-ordered ids, 0.53 ms became
 * 0.25 ms, throughput rose from 3,533 to 4,109 deliveries/s. With the time in milliseconds
 * only, the deliveries of the events published in one millisecond (a group commit's) still
 * interleaved at random, and recording the attempts of 64 of them touched 16 leaves of
 * delivery_attempts_once: 58% of the WAL frames recording wrote (bench/store-loop.ts with
 * the frames' pages looked up in dbstat, 0.43 frames per delivery). See test/domain/ids.test.ts.
 */
export function newTimedId(prefix: 'evt' | 'dlv', now = Date.now()): string {
  return `${prefix}_${nextTick(now)}${random16()}`;
}

/**
 * The next tick (see newTimedId) at `now` as 11 base-36 digits: `now` × 1000, or the last
 * tick plus one when that is later. `now` is held under the year 2255, where ticks would
 * pass 2^53 and stop being exact integers (a clock that far ahead must not end the order);
 * a `now` that is not a number is taken as the clock's (NaN would stop the count for good).
 * Ids made before ticks had 9 digits of milliseconds, and sort after these: only locality in
 * the indexes depended on that order (listings and retention order by `created_at` first).
 */
export function nextTick(now: number): string {
  const ms = Number.isFinite(now) ? Math.min(Math.max(0, Math.floor(now)), LATEST_MS) : Date.now();
  lastTick = Math.max(ms * 1000, lastTick + 1);
  return lastTick.toString(36).padStart(11, '0');
}
let lastTick = 0;
const LATEST_MS = 9_000_000_000_000;

function random16(): string {
  if (offset === entropy.length) {
    entropy = randomBytes(ENTROPY_BYTES);
    offset = 0;
  }
  offset += 16;
  return entropy.toString('base64url', offset - 16, offset);
}

/**
 * A lease token (which claim holds a delivery): 16 bytes of the same block as ids'. A
 * randomBytes call per claim was 1% of the main thread's time in the bench (SQLite,
 * --cpu-prof), a system call each.
 */
export function newLease(): string {
  return random16();
}

/** A secret for a client or a token: 32 random bytes, base64url. */
export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
