import type { App, Company, Grant, Role, StoredEvent, Subscription, User } from '../types.js';

/**
 * What claims read besides the deliveries themselves, kept between claims: one event's
 * deliveries are claimed over several claims, and every claim names the same few
 * subscriptions, apps, grants, companies, users and roles again.
 *
 * Events never change once stored, so an event stays until pushed out. The other rows are
 * valid at one `config_version` (migration 010: triggers count it up with every change to
 * those tables, by any process): `at(version)` empties them when the version moved.
 *
 * Measured (bench/store-loop.ts, SQLite, claims of 64): a claim took 10.6-11.7 us per
 * delivery reading those rows every time (json_each lists of ids, a row object per column
 * set by better-sqlite3, JSON parsed again), 5.6-6.6 us with them kept. End to end (bench,
 * SQLite, 100 x 1,000, alternating runs): 10,652, 10,299 and 10,571 deliveries/s without,
 * 11,424, 11,720 and 12,007 with (a first version that never let go of a row); a second
 * series, with this one, was within the machine's noise (11,447, 10,120 and 9,081 without;
 * 11,293, 9,005 and 9,711 with).
 */
export class ClaimCache {
  private version = Number.NaN;
  readonly events = new Bounded<StoredEvent>(EVENTS_KEPT, EVENT_BYTES_KEPT);
  readonly subscriptions = new Bounded<Subscription>(ROWS_KEPT);
  readonly apps = new Bounded<App>(ROWS_KEPT);
  readonly grants = new Bounded<Grant>(ROWS_KEPT);
  readonly companies = new Bounded<Company>(ROWS_KEPT);
  readonly users = new Bounded<User>(ROWS_KEPT);
  /** By `company_id \0 name`; null for a role that does not exist. */
  readonly roles = new Bounded<Role | null>(ROWS_KEPT);

  /**
   * The cache as of `version` (config_version, read in the claim's transaction): the
   * configuration rows are dropped if it moved, and every time when it is NaN (no version).
   */
  at(version: number): this {
    if (version !== this.version) {
      for (const rows of [this.subscriptions, this.apps, this.grants, this.companies, this.users, this.roles]) rows.clear();
      this.version = version;
    }
    return this;
  }
}

/**
 * Rows of one table kept. A claim names at most 100 of each, but a fan-out's claims go over
 * all its audience's subscriptions, and the next event to that audience names them again:
 * room for a fan-out of 20,000 (a subscription, as kept, is under 1 KB).
 */
const ROWS_KEPT = 20_000;
/** Events kept: their deliveries are claimed together, the oldest due first, so only the last few are named again. */
const EVENTS_KEPT = 256;
/** And at most this much of their bodies (an event may be as large as HERALD_BODY_LIMIT). */
const EVENT_BYTES_KEPT = 8 * 2 ** 20;

/** A Map that forgets its oldest entries past `max` of them, or past `maxWeight` of the weights given to set(). */
export class Bounded<V> {
  private readonly map = new Map<string, { value: V; weight: number }>();
  private weight = 0;

  constructor(private readonly max: number, private readonly maxWeight = Infinity) {}

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  get(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: string, value: V, weight = 0): void {
    const before = this.map.get(key);
    if (before) {
      this.weight -= before.weight;
      this.map.delete(key);
    }
    this.map.set(key, { value, weight });
    this.weight += weight;
    for (const [oldest, entry] of this.map) {
      if (this.map.size <= this.max && this.weight <= this.maxWeight) break;
      this.map.delete(oldest);
      this.weight -= entry.weight;
    }
  }

  clear(): void {
    this.map.clear();
    this.weight = 0;
  }
}
