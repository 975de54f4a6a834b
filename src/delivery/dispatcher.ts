import type { Logger } from 'pino';
import type { AccessCheck } from '../access-check.js';
import { nextRetryDelay } from '../domain/retry.js';
import type { ResourceType } from '../domain/catalog.js';
import { mayReceive } from '../domain/policy.js';
import { parseScope } from '../domain/scope.js';
import type { Config } from '../config.js';
import type { ClaimedDelivery, DeliveryOutcome, Store } from '../store/types.js';
import { attemptDelivery } from './attempt.js';
import type { Sender } from './sender.js';
import type { DeliveryTokens } from './tokens.js';

/** Most deliveries claimed in one statement. */
const CLAIM_BATCH = 100;
/** Most outcomes recorded in one transaction. */
const RECORD_BATCH = 500;

export interface DispatcherDeps {
  store: Store;
  config: Config;
  sender: Sender;
  tokens: DeliveryTokens;
  log: Logger;
  catalog: () => Promise<ResourceType[]>;
  accessCheck: AccessCheck | null;
}

/**
 * Claims due deliveries in batches under a lease, checks at send time that each is still
 * allowed (drops it with the reason otherwise), signs and POSTs it, and records the outcomes.
 *
 * Outcomes are group-committed: while one transaction writes, the next outcomes queue up
 * and go in the following one, so recording costs one transaction per batch, not per
 * delivery. A crash between the receiver's 2xx and that commit re-sends the delivery once
 * the lease expires: at-least-once, never lost; receivers de-duplicate on `webhook-id`.
 */
export class Dispatcher {
  private running = false;
  private inflight = 0;
  private loopDone: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  /** Set by notify(); a hint that arrives while the loop is busy must not wait for the poll. */
  private hinted = false;
  private readonly outcomes: DeliveryOutcome[] = [];
  private flushing: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly deps: DispatcherDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** A latency hint (an event was just published): look for work now instead of at the next poll. */
  notify(): void {
    this.hinted = true;
    this.wakeUp?.();
  }

  /** Stops claiming, lets in-flight sends finish and records their outcomes. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeUp?.();
    await this.loopDone;
    while (this.inflight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    while (this.flushing || this.outcomes.length > 0) await (this.flushing ?? this.flush());
  }

  private async loop(): Promise<void> {
    const { store, config, log } = this.deps;
    let failures = 0;
    while (this.running) {
      const free = config.delivery.concurrency - this.inflight;
      let wanted = 0;
      let claimed = 0;
      if (free > 0) {
        wanted = Math.min(free, CLAIM_BATCH);
        this.hinted = false;
        try {
          const batch = await store.claimDueDeliveries(wanted, Date.now(), config.delivery.leaseMs);
          claimed = batch.length;
          if (claimed > 0) await this.dispatch(batch);
          failures = 0;
        } catch (err) {
          failures++;
          log.error({ err }, 'claiming deliveries failed; retrying');
          await this.sleep(Math.min(100 * 2 ** failures, config.delivery.pollIntervalMs * 5));
          continue;
        }
      }
      // A full batch means more is probably due: claim again at once. Otherwise wait for a
      // publish hint, a freed slot (when at capacity) or the poll interval.
      if (free === 0 || (claimed < wanted && !this.hinted)) await this.sleep(config.delivery.pollIntervalMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  private async dispatch(batch: ClaimedDelivery[]): Promise<void> {
    const now = Date.now();
    const catalog = await this.deps.catalog();
    const sendable: ClaimedDelivery[] = [];
    for (const d of batch) {
      const reason = dropReason(d, catalog);
      if (reason) this.record({ kind: 'dropped', id: d.id, lease: d.lease, reason, at: now });
      else sendable.push(d);
    }
    const allowed = await this.checkAccess(sendable, now);
    if (allowed.length === 0) return;
    const tokens = await this.deps.tokens.forGrants(allowed.map((d) => d.grant!.id), now);
    for (const d of allowed) {
      this.inflight++;
      void this.deliver(d, tokens.get(d.grant!.id)!).finally(() => {
        this.inflight--;
        if (this.inflight < this.deps.config.delivery.concurrency) this.wakeUp?.();
        if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
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
    if (!this.flushing) this.flushing = this.flush().finally(() => (this.flushing = null));
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
