/** Herald as a library: create, publish, start. */
export { createHerald, type Herald, type HeraldOptions } from './herald.js';
export { loadConfig, ConfigError, type Config, type DeliveryConfig } from './config.js';
export type { PublishInput } from './service/publish.js';
export type { PublishOptions, PublishResult, Store, TransactionClient } from './store/types.js';
export { HeraldError, ERROR_CATALOGUE, type ErrorCode } from './domain/errors.js';
