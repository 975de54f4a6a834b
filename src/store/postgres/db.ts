import type { Pool, PoolClient, QueryResult } from 'pg';

export type Row = Record<string, unknown>;

/** A pool (one statement, autocommit) or a client inside a transaction. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<QueryResult<Row>>;
  query(config: { name: string; text: string; values: unknown[]; rowMode?: 'array' }): Promise<QueryResult<Row>>;
}

/**
 * Runs one statement. PostgreSQL TEXT cannot hold U+0000 (SQLite can): a NUL in a lookup key
 * or in a receiver's response excerpt would fail the statement (22021) and, in
 * recordOutcomes, the whole batch with it. NULs become U+FFFD here, the one place every
 * parameter passes through; no stored identifier can contain either.
 */
export function sql(db: Queryable, text: string, params: unknown[] = []): Promise<QueryResult<Row>> {
  return db.query(text, params.map(clean));
}

/**
 * sql() as a named prepared statement: parsed and planned once per connection, then only
 * bound and run. For the delivery path's statements (publish, claim, outcomes), which are
 * CTEs whose planning cost PostgreSQL more CPU than running them: at 1,000 publishes/s its
 * backends used over a core. Only on Herald's own pool, never on a host's client (the
 * statement would stay prepared on the host's connection), and only for statements with
 * fixed column lists (a prepared `SELECT *` fails once a migration changes the table).
 */
export function prepared(db: Queryable, name: string, text: string, params: unknown[] = []): Promise<QueryResult<Row>> {
  return db.query({ name: `herald_${name}`, text, values: params.map(clean) });
}

/** prepared() answering rows as arrays, with the result's column names: cheaper for pg to build than one object per row with dozens of keys. */
export async function preparedArrays(db: Queryable, name: string, text: string, params: unknown[] = []): Promise<{ rows: unknown[][]; names: string[] }> {
  const result = await db.query({ name: `herald_${name}`, text, values: params.map(clean), rowMode: 'array' });
  return { rows: result.rows as unknown as unknown[][], names: result.fields.map((f) => f.name) };
}

function clean(v: unknown): unknown {
  if (typeof v === 'string') return v.includes('\u0000') ? v.replaceAll('\u0000', '\uFFFD') : v;
  if (Array.isArray(v)) return v.map(clean);
  return v;
}

/**
 * Runs `fn` in one transaction on one pooled client: BEGIN, COMMIT, ROLLBACK on any error,
 * and the client always goes back to the pool (destroyed if even ROLLBACK failed, since its
 * connection state is then unknown). `fn` must only run SQL: holding a transaction across
 * network calls or timers holds its locks and a pool slot with it.
 */
export async function transaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** The name of the unique constraint or index a statement violated (23505), else null. */
export function uniqueViolation(err: unknown): string | null {
  if (!(err instanceof Error) || (err as { code?: unknown }).code !== '23505') return null;
  return String((err as { constraint?: unknown }).constraint ?? '');
}
