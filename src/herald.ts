import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { httpAccessCheck, type AccessCheck } from './access-check.js';
import { readCatalogFile } from './catalog-file.js';
import type { Config } from './config.js';
import { newSecret } from './domain/ids.js';
import { Dispatcher } from './delivery/dispatcher.js';
import { startRetention } from './delivery/retention.js';
import { ThreadedSender } from './delivery/send-thread.js';
import { DeliveryTokens } from './delivery/tokens.js';
import { hashAdminToken } from './http/auth.js';
import { buildHttp } from './http/app.js';
import { createLogger } from './logger.js';
import { declareResourceType } from './service/admin.js';
import type { Core } from './service/context.js';
import { recentCatalog } from './service/hot.js';
import { publish, type PublishInput } from './service/publish.js';
import { openStore } from './store/index.js';
import type { PublishOptions, PublishResult, Store } from './store/types.js';

export interface HeraldOptions {
  /** Run the HTTP API. Default true. */
  api?: boolean;
  /** Run the dispatcher. Default true. */
  worker?: boolean;
  logger?: Logger;
  /**
   * The host's instance-level access check for resource subscriptions (in-process). Default:
   * `HERALD_ACCESS_CHECK_URL` if set, else none (role and scope checks alone apply).
   */
  accessCheck?: AccessCheck;
  /** Called once with a generated admin token (when HERALD_ADMIN_TOKEN is unset). Default: print it. */
  onAdminTokenGenerated?: (token: string) => void;
}

export interface Herald {
  readonly config: Config;
  readonly store: Store;
  readonly log: Logger;
  readonly http: FastifyInstance | null;
  /**
   * Publishes an event in-process: resolves once the event and its deliveries are committed.
   * With `{ client }` (PostgreSQL only; see docs/outbox.md) it publishes inside the host's own
   * open transaction on that pg client instead: nothing is committed until the host commits,
   * and a rollback leaves no event, no delivery and no notification.
   */
  publish(event: PublishInput, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Listens (if the API runs) and starts the dispatcher and the hourly retention prune (if
   * the worker runs). Returns the base URL.
   */
  start(): Promise<string | null>;
  /** Stops taking requests, drains in-flight deliveries, closes the store. */
  stop(): Promise<void>;
}

/** Migrates the store, applies the catalog file, and wires HTTP and dispatcher. */
export async function createHerald(config: Config, options: HeraldOptions = {}): Promise<Herald> {
  const log = options.logger ?? createLogger(config.logLevel);
  const store = await openStore(config.databaseUrl);
  await store.migrate();

  const sender = config.delivery.sendThread
    ? new ThreadedSender(config.delivery, config.allowPrivateCallbacks)
    : new (await import('./delivery/sender.js')).Sender(config.delivery, config.allowPrivateCallbacks);
  const tokens = new DeliveryTokens(store, config.accessTokenTtlMs);
  let dispatcher: Dispatcher | null = null;
  const core: Core = {
    store,
    config,
    log,
    now: Date.now,
    catalog: () => store.listResourceTypes(),
    notify: (fanOut) => dispatcher?.notify(fanOut),
    delivery: { sender, tokens },
    accessCheck:
      options.accessCheck ??
      (config.accessCheckUrl ? httpAccessCheck(config.accessCheckUrl, { token: config.accessCheckToken }) : null),
  };
  if (config.catalogFile) {
    for (const { type, ...body } of readCatalogFile(config.catalogFile)) await declareResourceType(core, type, body);
  }
  if (options.worker !== false) {
    dispatcher = new Dispatcher({ store, config, sender, tokens, log, catalog: (fresh) => recentCatalog(core, fresh), accessCheck: core.accessCheck });
  }
  // Other processes' publishes wake this dispatcher at once (a hint; polling stays the backstop).
  const worker = dispatcher;
  const unlisten = worker && store.listen ? await store.listen((fanOut) => worker.notify(fanOut)) : null;

  let http: FastifyInstance | null = null;
  if (options.api !== false) {
    const adminTokenHash = await resolveAdminToken(store, config, options.onAdminTokenGenerated ?? printAdminToken);
    const sessionSecret = await store.settingIfAbsent('session_secret', newSecret());
    http = await buildHttp({ core, adminTokenHash, sessionSecret, logger: log });
  }

  let stopped = false;
  let stopRetention: (() => Promise<void>) | null = null;
  return {
    config,
    store,
    log,
    http,
    publish: (event, publishOptions) => publish(core, event, publishOptions),
    async start() {
      dispatcher?.start();
      if (dispatcher && !stopRetention && !stopped) stopRetention = startRetention(store, log, { days: config.retentionDays });
      if (!http) return null;
      await http.listen({ port: config.port, host: config.host });
      const addr = http.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      return `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:${port}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await http?.close();
      await stopRetention?.();
      await dispatcher?.stop();
      await sender.close();
      await unlisten?.();
      await store.close();
    },
  };
}

/**
 * The admin token is only ever stored as a SHA-256 hash. With HERALD_ADMIN_TOKEN set, that
 * is the token; otherwise the first start generates one, stores its hash and prints it once.
 */
async function resolveAdminToken(store: Store, config: Config, onGenerated: (token: string) => void): Promise<string> {
  if (config.adminToken) return hashAdminToken(config.adminToken);
  const candidate = `hadm_${newSecret()}`;
  const stored = await store.settingIfAbsent('admin_token_sha256', hashAdminToken(candidate));
  if (stored === hashAdminToken(candidate)) onGenerated(candidate);
  return stored;
}

function printAdminToken(token: string): void {
  process.stdout.write(
    `\nHerald generated an admin token. It is stored hashed and shown only this once:\n\n  HERALD_ADMIN_TOKEN=${token}\n\n`,
  );
}
