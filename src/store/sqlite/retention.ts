import { setImmediate as nextTurn } from 'node:timers/promises';
import { checkPruneArgs } from '../retention.js';
import type { SqliteStore } from './sqlite-store.js';

type Row = Record<string, unknown>;

/**
 * Store.prune on SQLite: the same selection as postgres/retention.ts. Each batch (at most
 * `batchSize` events with their deliveries and attempts, or `batchSize` rows of one other
 * table) is one short write transaction, and the event loop gets a turn between batches
 * (better-sqlite3 is synchronous): publishes, claims and HTTP requests go on while a large
 * backlog is pruned.
 *
 * An event goes when it was created before the cutoff, none of its deliveries is pending
 * or changed since the cutoff, and its fan-out is complete (no `fanouts` row). Events are
 * walked in (created_at, id) order from where the previous batch stopped, so an old event
 * still pending is passed once per run. LIMITs bind through CAST(@n AS INTEGER): see the note
 * on LIMITs in sqlite-store.ts.
 */
const DOOMED_EVENTS = `SELECT e.id, e.created_at FROM events e
  WHERE e.created_at < @before AND (e.created_at, e.id) > (@afterCreatedAt, @afterId)
    AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.event_id = e.id AND (p.status = 'pending' OR p.updated_at >= @before))
    AND NOT EXISTS (SELECT 1 FROM fanouts f WHERE f.event_id = e.id)
  ORDER BY e.created_at, e.id
  LIMIT CAST(@n AS INTEGER)`;

/** Expired before the cutoff: kept until then, an expired token still answers "expired", a used code or refresh token still tells a replay. */
const PRUNE_EXPIRED = [
  'DELETE FROM access_tokens WHERE hash IN (SELECT hash FROM access_tokens WHERE expires_at < @before LIMIT CAST(@n AS INTEGER))',
  'DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at < @before LIMIT CAST(@n AS INTEGER))',
  'DELETE FROM oauth_codes WHERE hash IN (SELECT hash FROM oauth_codes WHERE expires_at < @before OR used_at < @before LIMIT CAST(@n AS INTEGER))',
  'DELETE FROM app_secrets WHERE rowid IN (SELECT rowid FROM app_secrets WHERE expires_at < @before LIMIT CAST(@n AS INTEGER))',
];

export async function prune(s: SqliteStore, before: number, batchSize: number, signal?: AbortSignal): Promise<number> {
  checkPruneArgs(before, batchSize);
  let deleted = 0;
  let after = { afterCreatedAt: Number.MIN_SAFE_INTEGER, afterId: '' };
  for (;;) {
    if (signal?.aborted) return deleted;
    const events = s.write(() => {
      const rows = s.q(DOOMED_EVENTS).all({ before, n: batchSize, ...after }) as Row[];
      if (rows.length === 0) return rows;
      const ids = JSON.stringify(rows.map((r) => String(r.id)));
      deleted += s.q(
        `DELETE FROM delivery_attempts WHERE delivery_id IN
           (SELECT id FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?)))`,
      ).run(ids).changes;
      deleted += s.q('DELETE FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?))').run(ids).changes;
      deleted += s.q('DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))').run(ids).changes;
      return rows;
    });
    if (events.length < batchSize) break;
    const last = events.at(-1)!;
    after = { afterCreatedAt: Number(last.created_at), afterId: String(last.id) };
    await nextTurn();
  }
  for (const text of PRUNE_EXPIRED) {
    for (;;) {
      if (signal?.aborted) return deleted;
      const batch = s.write(() => s.q(text).run({ before, n: batchSize }).changes);
      deleted += batch;
      if (batch < batchSize) break;
      await nextTurn();
    }
  }
  return deleted;
}
