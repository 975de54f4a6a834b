import type { Logger } from 'pino';
import type { ResourceType } from '../domain/catalog.js';
import type { AccessCheck } from '../access-check.js';
import type { Config } from '../config.js';
import type { Transport } from '../delivery/transport.js';
import type { DeliveryTokens } from '../delivery/tokens.js';
import type { Store } from '../store/types.js';

/** What every service function works with. `now` is injectable for tests. */
export interface Core {
  store: Store;
  config: Config;
  log: Logger;
  now: () => number;
  catalog: () => Promise<ResourceType[]>;
  /** Latency hint to the local dispatcher that deliveries were queued; `fanOut`: and that a fan-out is left to queue. */
  notify: (fanOut?: boolean) => void;
  /** The sending side, shared with the dispatcher (test pings use it on API-only processes too). */
  delivery: { sender: Transport; tokens: DeliveryTokens };
  /** The host's instance-level access check for resource subscriptions, if it registered one. */
  accessCheck: AccessCheck | null;
}

export const isoTime = (ms: number): string => new Date(ms).toISOString();
