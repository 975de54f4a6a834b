import type { Pool } from 'pg';
import { checkPruneArgs } from '../retention.js';
import { sql } from './db.js';

/**
 * Store.prune on PostgreSQL. Every statement autocommits and deletes at most `batchSize`
 * events (with their deliveries and attempts) or `batchSize` rows of one other table, and
 * is repeated until a batch comes back short, so no transaction lasts long and publishing
 * and claiming go on meanwhile. Candidates are locked FOR UPDATE SKIP LOCKED: a row someone
 * holds is left for the next run instead of waited for, and several Herald processes
 * pruning at once share the work instead of queueing behind each other.
 *
 * An event goes when it was created before the cutoff, none of its deliveries is pending
 * or changed since the cutoff, and its fan-out is complete (no `fanouts` row); nothing can
 * bring a delivery back to pending or add one to an old event whose fan-out is complete, so
 * that cannot change under the statement. Its deliveries are locked SKIP
 * LOCKED too, and an event goes only with all of them: one that someone holds keeps its
 * event for the next run. Events are walked in (created_at, id) order from where the
 * previous batch stopped, so an event kept (still pending) is passed once per run, not once
 * per batch. An event goes in the statement that deletes all its deliveries (there is no
 * foreign key from deliveries to events since migration 010 to check that).
 */
const PRUNE_EVENTS = `WITH candidates AS MATERIALIZED (
  SELECT e.id, e.created_at FROM events e
  WHERE e.created_at < $1 AND (e.created_at, e.id) > ($3::bigint, $4::text)
    AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.event_id = e.id AND (p.status = 'pending' OR p.updated_at >= $1))
    AND NOT EXISTS (SELECT 1 FROM fanouts f WHERE f.event_id = e.id)
  ORDER BY e.created_at, e.id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), locked AS MATERIALIZED (
  SELECT d.id, d.event_id FROM deliveries d
  WHERE d.event_id IN (SELECT id FROM candidates)
  FOR UPDATE SKIP LOCKED
), doomed AS MATERIALIZED (
  SELECT c.id FROM candidates c LEFT JOIN (SELECT event_id, count(*) AS n FROM locked GROUP BY event_id) l ON l.event_id = c.id
  WHERE (SELECT count(*) FROM deliveries x WHERE x.event_id = c.id) = COALESCE(l.n, 0)
), attempts AS (
  DELETE FROM delivery_attempts a USING locked l, doomed
  WHERE a.delivery_id = l.id AND l.event_id = doomed.id RETURNING 1
), removed AS (
  DELETE FROM deliveries d USING locked l, doomed WHERE d.id = l.id AND l.event_id = doomed.id RETURNING 1
), gone AS (
  DELETE FROM events e USING doomed WHERE e.id = doomed.id RETURNING 1
), last AS (
  SELECT created_at, id FROM candidates ORDER BY created_at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM candidates) AS batch,
       (SELECT count(*) FROM gone) + (SELECT count(*) FROM removed) + (SELECT count(*) FROM attempts) AS deleted,
       (SELECT created_at FROM last) AS last_created_at, (SELECT id FROM last) AS last_id`;

/** Expired before the cutoff: kept until then, an expired token still answers "expired", a used code or refresh token still tells a replay. */
const PRUNE_EXPIRED = [
  'DELETE FROM access_tokens WHERE hash IN (SELECT hash FROM access_tokens WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)',
  'DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)',
  'DELETE FROM oauth_codes WHERE hash IN (SELECT hash FROM oauth_codes WHERE expires_at < $1 OR used_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)',
  // No key: rows by their physical address, which is stable here (app_secrets rows are never updated).
  'DELETE FROM app_secrets WHERE ctid = ANY(ARRAY(SELECT ctid FROM app_secrets WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))',
];

export async function prune(pool: Pool, before: number, batchSize: number, signal?: AbortSignal): Promise<number> {
  checkPruneArgs(before, batchSize);
  let deleted = 0;
  let cursor: [createdAt: number, id: string] = [Number.MIN_SAFE_INTEGER, ''];
  for (;;) {
    if (signal?.aborted) return deleted;
    const row = (await sql(pool, PRUNE_EVENTS, [before, batchSize, ...cursor])).rows[0]!;
    const batch = Number(row.batch);
    deleted += Number(row.deleted);
    if (batch < batchSize) break;
    cursor = [Number(row.last_created_at), String(row.last_id)];
  }
  for (const text of PRUNE_EXPIRED) {
    for (;;) {
      if (signal?.aborted) return deleted;
      const batch = (await sql(pool, text, [before, batchSize])).rowCount ?? 0;
      deleted += batch;
      if (batch < batchSize) break;
    }
  }
  return deleted;
}
