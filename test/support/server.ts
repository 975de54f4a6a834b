import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { createHerald, type Herald, type HeraldOptions } from '../../src/herald.js';
import { freshPostgresUrl } from './postgres.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Api {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

export interface TestServer {
  herald: Herald;
  url: string;
  dir: string;
  databaseUrl: string;
  /** Admin API call with the admin token. */
  admin(method: string, path: string, body?: unknown): Promise<Api>;
  /** Any call; `init.headers` as given. */
  call(method: string, path: string, init?: { token?: string; body?: unknown; form?: string; raw?: string; headers?: Record<string, string> }): Promise<Api>;
  stop(): Promise<void>;
}

export function testEnv(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: `sqlite:${join(dir, 'herald.db')}`,
    HERALD_ADMIN_TOKEN: ADMIN_TOKEN,
    HERALD_ALLOW_PRIVATE_CALLBACKS: 'true',
    HERALD_RETRY_SCHEDULE: '100ms,100ms,100ms',
    HERALD_POLL_INTERVAL: '50ms',
    HERALD_DELIVERY_TIMEOUT: '2s',
    HERALD_LEASE: '5s',
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

/** A real Herald on a random loopback port with its own SQLite file. */
/**
 * The engine the integration suite runs on: SQLite by default; `HERALD_TEST_ENGINE=postgres`
 * runs every startServer() on a fresh PostgreSQL database (npm test runs the suite both ways).
 */
export const TEST_ENGINE = process.env.HERALD_TEST_ENGINE === 'postgres' ? 'postgres' : 'sqlite';

export async function startServer(env: Record<string, string> = {}, opts: { dir?: string; herald?: HeraldOptions } = {}): Promise<TestServer> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'herald-test-'));
  const fresh = TEST_ENGINE === 'postgres' && !env.DATABASE_URL ? await freshPostgresUrl() : null;
  if (fresh) env = { ...env, DATABASE_URL: fresh.url };
  const config = loadConfig(testEnv(dir, env));
  const herald = await createHerald(config, { logger: pino({ level: config.logLevel }), ...opts.herald });
  const url = (await herald.start())!;
  const call: TestServer['call'] = async (method, path, init = {}) => {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    let body: string | undefined;
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    if (init.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(init.body);
    } else if (init.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = init.form;
    } else if (init.raw !== undefined) body = init.raw;
    const res = await fetch(`${url}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
  return {
    herald,
    url,
    dir,
    databaseUrl: config.databaseUrl,
    admin: (method, path, body) => call(method, path, { token: ADMIN_TOKEN, body }),
    call,
    async stop() {
      await herald.stop();
      await fresh?.drop();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
