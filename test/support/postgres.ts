import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server the PostgreSQL tests use; override with HERALD_TEST_POSTGRES_URL. */
export const ADMIN_URL = process.env.HERALD_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface FreshPostgres {
  /** postgres:// URL of a new, empty database. */
  url: string;
  /** Drops it, terminating any connection still open on it. */
  drop(): Promise<void>;
}

/**
 * Creates `herald_test_<random hex>` on the test server. Rejects when PostgreSQL is
 * unreachable: the PostgreSQL suites fail then, they never skip.
 */
export async function freshPostgresUrl(): Promise<FreshPostgres> {
  const name = `herald_test_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`PostgreSQL is unreachable at ${ADMIN_URL} (the PostgreSQL tests need it)`, { cause: err });
  }
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
