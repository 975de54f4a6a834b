import type { Logger } from 'pino';
import type { AccessCheck } from '../access-check.js';
import { nextRetryDelay } from '../domain/retry.js';
import type { ResourceType } from '../domain/catalog.js';
import { mayReceive } from '../domain/policy.js';
import { parseScope } from '../domain/scope.js';
import type { Config } from '../config.js';
import { originKey, type ClaimedDelivery, type DeliveryOutcome, type Store } from '../store/types.js';
import { attemptDelivery } from './attempt.js';
import { FanOutExpander } from './fan-out.js';
import { eventBytes } from './request.js';
import { StalledSends } from './stalled.js';
import type { Transport } from './transport.js';
import type { DeliveryTokens } from './tokens.js';

/** Most deliveries claimed in one statement. */
const CLAIM_BATCH = 100;
/** Most outcomes recorded in one transaction. */
const RECORD_BATCH = 500;
/**
 * Outcomes wait this long for company before they are written, unless FLUSH_AT are waiting.
 * Measured (bench, SQLite, 100 subscriptions x 200 events): recording each outcome as it
 * came meant one transaction per delivery, since a synchronous engine finishes a write
 * before the next answer arrives, so nothing ever gathered; 5 ms gathers dozens at
 * thousands per second and costs a receiver nothing (it already has its answer).
 */
const FLUSH_DELAY_MS = 5;
const FLUSH_AT = 64;
/**
 * The same for an engine whose claims cannot carry outcomes (no Store.recordAndClaim:
 * SQLite), where every outcome is written by a flush. Measured (bench, SQLite, 100
 * subscriptions x 1,000 events, a preload counting the store's calls): at 5 ms / 64 the
 * steady state was 530 recordOutcomes transactions a second of 37 outcomes each, at 20 ms /
 * 512, 80 of 280 at 22,000 deliveries/s; end to end 15,917-16,900 -> 16,323-17,373/s (four
 * alternating pairs: within the noise, three of four ahead). Outcomes held longer cost
 * nothing but their memory: a crash loses at most these 20 ms of them, re-sent as
 * at-least-once allows. PostgreSQL keeps 5 ms / 64: its claims record most outcomes, and two
 * pairs at 20 ms came out one lower and one higher.
 */
const SOLO_FLUSH_DELAY_MS = 20;
const SOLO_FLUSH_AT = 512;
/**
 * With sends in flight, the next claim waits until a quarter of the slots are free (or this
 * long): claiming as each slot freed made every claim a statement for one delivery.
 */
const CLAIM_GATHER_MS = 5;
/**
 * A send still running after STALL_MS stops counting against HERALD_CONCURRENCY; it still
 * counts against its origin's HERALD_MAX_IN_FLIGHT_PER_ORIGIN (StalledSends says why). At
 * most MAX_STALLED_FACTOR x concurrency sends are let off that way, holding at most
 * MAX_STALLED_BYTES of event JSON: 64 sends of the largest events HERALD_BODY_LIMIT allows
 * by default, about 1,000 of 64 KiB, as many as the count allows below that.
 * Measured (bench hanging scenario, 10 origins, cap 32 per origin): without STALL_MS the
 * healthy origins kept 0.74 of their rate on PostgreSQL while origin 0 held 32 of the 64
 * slots (0.97 on SQLite); with it, 0.89-0.92 (1.13).
 */
const STALL_MS = 1000;
const MAX_STALLED_FACTOR = 4;
const MAX_STALLED_BYTES = 64 * 1024 * 1024;
/** How often the loop looks for sends that have stalled. */
const STALL_SWEEP_MS = 100;

export interface DispatcherDeps {
  store: Store;
  config: Config;
  sender: Transport;
  tokens: DeliveryTokens;
  log: Logger;
  /** The catalog, possibly a second old; `fresh` reads it now. */
  catalog: (fresh?: boolean) => Promise<ResourceType[]>;
  accessCheck: AccessCheck | null;
}

/**
 * Claims due deliveries in batches under a lease, checks at send time that each is still
 * allowed (drops it with the reason otherwise), signs and POSTs it, and records the outcomes.
 *
 * Outcomes are group-committed: they gather for a few milliseconds and go in one
 * transaction, so recording costs one transaction per batch, not per delivery. A crash
 * between the receiver's 2xx and that commit re-sends the delivery once the lease expires:
 * at-least-once, never lost; receivers de-duplicate on `webhook-id`.
 *
 * Each receiver origin gets at most `maxInFlightPerOrigin` of the `concurrency` slots, and
 * claims take no more for an origin than it has room for (ClaimRoom), so a receiver that
 * hangs until the timeout holds its share of the slots, never the others'; and once its
 * sends have run for STALL_MS they no longer count against `concurrency` at all.
 */
export class Dispatcher {
  private running = false;
  private inflight = 0;
  private readonly inflightByOrigin = new Map<string, number>();
  /** The sends in flight by key, and those let off the concurrency (STALL_MS). */
  private readonly stalled: StalledSends;
  private nextSend = 0;
  private lastSweep = 0;
  private loopDone: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  /** What the loop waits for: free slots (at capacity), new work (idle), or time for work to gather (a hint does not cut it short). */
  private waiting: 'slots' | 'work' | 'gather' | null = null;
  /** Set by notify(); a hint that arrives while the loop is busy must not wait for the poll. */
  private hinted = false;
  private readonly outcomes: DeliveryOutcome[] = [];
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly claimAt: number;
  private readonly flushDelayMs: number;
  private readonly flushAt: number;
  /** Queues the rest of large fan-outs: deliveries are this process's work as much as sending them. */
  private readonly fanOut: FanOutExpander;

  constructor(private readonly deps: DispatcherDeps) {
    this.claimAt = Math.max(1, Math.floor(deps.config.delivery.concurrency / 4));
    this.stalled = new StalledSends(deps.config.delivery.concurrency * MAX_STALLED_FACTOR, MAX_STALLED_BYTES, STALL_MS);
    const carried = deps.store.recordAndClaim !== undefined;
    this.flushDelayMs = carried ? FLUSH_DELAY_MS : SOLO_FLUSH_DELAY_MS;
    this.flushAt = carried ? FLUSH_AT : SOLO_FLUSH_AT;
    this.fanOut = new FanOutExpander({ store: deps.store, log: deps.log, pollIntervalMs: deps.config.delivery.pollIntervalMs, queued: () => this.notify() });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
    this.fanOut.start();
  }

  /**
   * A latency hint (an event was just published): look for work now instead of at the next
   * poll. `fanOut`: the publish left part of its fan-out to be queued (Store.expandFanOut).
   */
  notify(fanOut = false): void {
    this.hinted = true;
    if (this.waiting === 'work') this.wakeUp?.();
    if (fanOut) this.fanOut.notify();
  }

  /** Stops claiming, lets in-flight sends finish and records their outcomes. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.fanOut.stop();
    this.wakeUp?.();
    await this.loopDone;
    while (this.inflight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    while (this.flushing || this.outcomes.length > 0) await (this.flushing ?? this.flushNow());
  }

  private async loop(): Promise<void> {
    const { config, log } = this.deps;
    const { pollIntervalMs } = config.delivery;
    let failures = 0;
    while (this.running) {
      this.sweepStalled();
      if (this.inflight > 0 && this.free() < this.claimAt) {
        await this.wait('slots', CLAIM_GATHER_MS);
        this.sweepStalled();
        if (this.free() <= 0) continue;
      }
      const wanted = Math.min(this.free(), CLAIM_BATCH);
      this.hinted = false;
      const endedBefore = this.sendsEnded();
      let claimed = 0;
      try {
        const batch = await this.claim(wanted);
        claimed = batch.length;
        if (claimed > 0) await this.dispatch(batch);
        failures = 0;
      } catch (err) {
        failures++;
        log.error({ err }, 'claiming deliveries failed; retrying');
        await this.wait('work', Math.min(100 * 2 ** failures, pollIntervalMs * 5));
        continue;
      }
      // A full batch means more is probably due: claim again at once. A short one means
      // nothing more is due, or what is due is for origins without room: with sends in
      // flight, room comes back as they end, so look again after gathering a few; with none,
      // wait for a publish hint or the poll. (Waking on the end of a send at a "full" origin
      // instead missed sends that ended while a PostgreSQL claim ran, and sends to other
      // origins: the loop slept a whole poll interval, 32 deliveries a second.)
      //
      // After a short claim, publish hints gather for CLAIM_GATHER_MS rather than each
      // starting a claim: at 1,000 publishes/s of one delivery each, a claim per hint made
      // PostgreSQL run a claim of one or two rows per millisecond, and publishes queued behind
      // them for seconds (bench/latency.ts).
      //
      // Sends that ended while the claim ran count too: the claim saw their origins full
      // (PostgreSQL's takes the room when it starts) and may have found nothing while due
      // deliveries wait for exactly that room. Found by the fan-out test in
      // test/integration/delivery.test.ts on PostgreSQL under load: the last 32 sends to the
      // one origin ended during a claim that took none, nothing was left in flight, and the
      // loop slept for the poll (a minute there) with 327 deliveries due.
      if (claimed < wanted) {
        if (this.inflight > 0 || this.hinted || this.sendsEnded() !== endedBefore) await this.wait('gather', CLAIM_GATHER_MS);
        else await this.wait('work', pollIntervalMs);
      }
    }
  }

  private wait(what: 'slots' | 'work' | 'gather', ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        this.waiting = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting = what;
      this.wakeUp = done;
    });
  }

  /** Sends ended so far (each started one took a key): a claim that ran while some ended was made with less room than there is now. */
  private sendsEnded(): number {
    return this.nextSend - this.inflight;
  }

  /** Slots free: the concurrency less the sends in flight that are not let off (STALL_MS). */
  private free(): number {
    return this.deps.config.delivery.concurrency - (this.inflight - this.stalled.count);
  }

  /** Lets off the sends running for STALL_MS (StalledSends), at most every STALL_SWEEP_MS. */
  private sweepStalled(): void {
    const now = performance.now();
    if (now - this.lastSweep < STALL_SWEEP_MS) return;
    this.lastSweep = now;
    this.stalled.sweep(now);
  }

  /** A send ended: wake the loop if what it waits for is now there. */
  private released(origin: string, key: number): void {
    this.inflight--;
    this.stalled.ended(key);
    const left = (this.inflightByOrigin.get(origin) ?? 1) - 1;
    if (left === 0) this.inflightByOrigin.delete(origin);
    else this.inflightByOrigin.set(origin, left);
    if (this.waiting === 'slots' && (this.inflight === 0 || this.free() >= this.claimAt)) this.wakeUp?.();
    if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async dispatch(batch: ClaimedDelivery[]): Promise<void> {
    const now = Date.now();
    // A recent catalog (see service/hot.ts); a delivery it would drop is judged again on a fresh one.
    let catalog = await this.deps.catalog();
    let reasons = batch.map((d) => dropReason(d, catalog));
    if (reasons.some((r) => r !== null)) {
      catalog = await this.deps.catalog(true);
      reasons = batch.map((d) => dropReason(d, catalog));
    }
    const sendable: ClaimedDelivery[] = [];
    batch.forEach((d, i) => {
      const reason = reasons[i];
      if (reason) this.record({ kind: 'dropped', id: d.id, lease: d.lease, reason, at: now });
      else sendable.push(d);
    });
    const allowed = await this.checkAccess(sendable, now);
    if (allowed.length === 0) return;
    const tokens = await this.deps.tokens.forGrants(allowed.map((d) => d.grant!.id), now);
    for (const d of allowed) {
      const origin = originKey(d.subscription!.callback_url);
      this.inflight++;
      this.inflightByOrigin.set(origin, (this.inflightByOrigin.get(origin) ?? 0) + 1);
      const key = this.nextSend++;
      this.stalled.started(key, performance.now(), eventBytes(d.event));
      void this.deliver(d, tokens.get(d.grant!.id)!).finally(() => this.released(origin, key));
    }
  }

  /**
   * The host's access check, for resource subscriptions only, asked once per user and
   * resource in a batch. A refusal drops the delivery; no answer retries it on the schedule
   * (logged as an attempt that sent nothing), since guessing either way would be wrong.
   */
  private async checkAccess(batch: ClaimedDelivery[], now: number): Promise<ClaimedDelivery[]> {
    const check = this.deps.accessCheck;
    if (!check) return batch;
    const answers = new Map<string, Promise<boolean>>();
    const results = await Promise.all(
      batch.map(async (d) => {
        const sub = d.subscription!;
        if (!sub.resource) return true;
        const key = JSON.stringify([sub.user_id, sub.resource.type, sub.resource.id, d.event.channel]);
        let answer = answers.get(key);
        if (!answer) {
          answer = check({ company_id: sub.company_id, user_id: sub.user_id, role: d.user!.role, resource: sub.resource, channel: d.event.channel });
          answers.set(key, answer);
        }
        try {
          return await answer;
        } catch (err) {
          this.deps.log.warn({ err, delivery: d.id }, 'access check failed at delivery time');
          return null;
        }
      }),
    );
    const out: ClaimedDelivery[] = [];
    batch.forEach((d, i) => {
      const r = results[i];
      if (r === true) return void out.push(d);
      if (r === false) {
        const res = d.subscription!.resource!;
        return this.record({ kind: 'dropped', id: d.id, lease: d.lease, reason: `host access check refused ${res.type} "${res.id}"`, at: now });
      }
      const attempt = { delivery_id: d.id, attempt: d.attempts + 1, started_at: now, duration_ms: 0, status_code: null, error: "host access check did not answer; nothing was sent", response_excerpt: null };
      const delay = nextRetryDelay(this.deps.config.retrySchedule, d.attempts + 1, null);
      this.record(delay === null ? { kind: 'failed', id: d.id, lease: d.lease, attempt } : { kind: 'retry', id: d.id, lease: d.lease, attempt, next_attempt_at: now + delay });
    });
    return out;
  }

  private async deliver(d: ClaimedDelivery, token: { token: string; expiresAt: number }): Promise<void> {
    const { sender, log, config } = this.deps;
    const { outcome } = await attemptDelivery({ sender, log, retrySchedule: config.retrySchedule }, d, token);
    this.record(outcome);
  }

  private record(outcome: DeliveryOutcome): void {
    this.outcomes.push(outcome);
    if (this.outcomes.length >= this.flushAt || !this.running) void this.flushNow();
    else this.flushTimer ??= setTimeout(() => void this.flushNow(), this.flushDelayMs);
  }

  /**
   * Claims up to `wanted` deliveries. When the engine can (Store.recordAndClaim) and no flush
   * is running, the outcomes waiting are recorded by the same round trip: most outcomes are
   * recorded so, since the slots they free are what calls for the claim. If that fails they
   * go back to wait for the next claim or flush.
   */
  private async claim(wanted: number): Promise<ClaimedDelivery[]> {
    const { store, config } = this.deps;
    const { maxInFlightPerOrigin, leaseMs } = config.delivery;
    const room = { perOrigin: maxInFlightPerOrigin, inFlight: this.inflightByOrigin };
    if (!store.recordAndClaim || this.flushing || this.outcomes.length === 0) return store.claimDueDeliveries(wanted, Date.now(), leaseMs, room);
    const carried = this.outcomes.splice(0, RECORD_BATCH);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.outcomes.length > 0) void this.flushNow();
    try {
      return await store.recordAndClaim(carried, wanted, Date.now(), leaseMs, room);
    } catch (err) {
      this.outcomes.unshift(...carried);
      void this.flushNow();
      throw err;
    }
  }

  /** Starts a flush unless one runs (it takes what gathered meanwhile before it ends). */
  private flushNow(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.flushing ??= this.flush().finally(() => (this.flushing = null));
    return this.flushing;
  }

  private async flush(): Promise<void> {
    let failures = 0;
    while (this.outcomes.length > 0) {
      const batch = this.outcomes.splice(0, RECORD_BATCH);
      try {
        await this.deps.store.recordOutcomes(batch);
        failures = 0;
      } catch (err) {
        // Keep them and try again; if the store stays away the leases expire and the
        // deliveries are sent again, which is the at-least-once promise.
        this.outcomes.unshift(...batch);
        if (++failures > 20) {
          this.deps.log.error({ err, dropped: this.outcomes.length }, 'recording outcomes keeps failing; their deliveries will be retried after the lease');
          this.outcomes.length = 0;
          return;
        }
        this.deps.log.warn({ err }, 'recording outcomes failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** failures, 2000)));
      }
    }
  }
}

/** Why a claimed delivery may no longer be sent, or null when it may. */
export function dropReason(d: ClaimedDelivery, catalog: readonly ResourceType[]): string | null {
  if (d.event.channel === 'ping') return 'test ping interrupted (pings are answered at once, never retried)';
  if (!d.subscription) return 'subscription deleted';
  if (!d.app) return 'app deleted';
  if (!d.grant || d.grant.revoked_at !== null) return 'grant revoked';
  if (!d.company) return 'company deleted';
  if (!d.user) return 'user removed';
  let scope;
  try {
    scope = parseScope(d.grant.scope);
  } catch {
    return 'grant scope is invalid';
  }
  const decision = mayReceive(catalog, d.event.channel, {
    scope,
    permissions: d.role?.permissions ?? null,
    roleName: d.user.role,
    revoked: false,
  });
  return decision.ok ? null : decision.reason;
}
