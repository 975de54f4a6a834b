import { isName, resolveChannel } from '../domain/catalog.js';
import { HeraldError } from '../domain/errors.js';
import { newTimedId } from '../domain/ids.js';
import { leftFanOut } from '../store/rows.js';
import type { PublishOptions, PublishResult } from '../store/types.js';
import type { Core } from './context.js';
import { companyExists, recentCatalog } from './hot.js';

/** An event as the host publishes it (CONTRACT section 2). */
export interface PublishInput {
  channel: string;
  company_id: string;
  object: { id: string | number; [key: string]: unknown };
  links?: unknown[];
  /** Parents the object belongs to, by type: `{project: "proj1"}`. */
  resources?: Record<string, string>;
  /** Who did it; optional. */
  user_id?: string | null;
  /** The same key twice in one company stores one event; the repeat answers with the first id. */
  idempotency_key?: string | null;
}

/** Deeper JSON than this is refused: nobody's object looks like that, and serialising it recurses. */
const MAX_DEPTH = 64;

/** Iterative, so a hostile 100,000-level value cannot overflow the stack while being checked. */
function jsonDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

const bad = (detail: string): never => {
  throw new HeraldError('VALIDATION_FAILED', detail);
};

/**
 * Stores the event and its deliveries in one transaction; resolves only once committed.
 * Validates its input itself, since hosts embedding Herald call it without the HTTP schema.
 *
 * With `options.client` (PostgreSQL) the event and its deliveries are written inside the
 * host's open transaction on that client instead, and are committed or rolled back with it.
 * The lookups before (catalog, company) still read committed data through Herald's pool.
 */
export async function publish(core: Core, input: PublishInput, options?: PublishOptions): Promise<PublishResult> {
  if (typeof input !== 'object' || input === null) bad('event must be an object');
  if (typeof input.channel !== 'string') bad('channel must be a string');
  if (typeof input.company_id !== 'string') bad('company_id must be a string');
  const o = input.object;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('object must be a JSON object');
  if (!((typeof o.id === 'string' && o.id.length > 0 && o.id.length <= 255) || (typeof o.id === 'number' && Number.isFinite(o.id)))) {
    bad('object.id must be a non-empty string (at most 255 characters) or a number');
  }
  if (jsonDeeperThan(o, MAX_DEPTH)) bad(`object is nested deeper than ${MAX_DEPTH} levels`);
  const links = input.links ?? [];
  if (jsonDeeperThan(links, MAX_DEPTH)) bad(`links are nested deeper than ${MAX_DEPTH} levels`);
  if (!Array.isArray(links) || links.length > 100) bad('links must be an array of at most 100 entries');
  const resources = input.resources ?? {};
  if (typeof resources !== 'object' || resources === null || Array.isArray(resources)) bad('resources must be an object of type -> id');
  for (const [type, id] of Object.entries(resources)) {
    if (!isName(type)) bad(`resources key "${type}" is not a resource type name`);
    if (typeof id !== 'string' || id.length === 0 || id.length > 255) bad(`resources.${type} must be a non-empty string`);
  }
  const userId = input.user_id ?? null;
  if (userId !== null && (typeof userId !== 'string' || userId.length > 255)) bad('user_id must be a string');
  const key = input.idempotency_key ?? null;
  if (key !== null && (typeof key !== 'string' || key.length === 0 || key.length > 255)) bad('idempotency_key must be 1 to 255 characters');

  if (!resolveChannel(await recentCatalog(core), input.channel) && !resolveChannel(await recentCatalog(core, true), input.channel)) {
    throw new HeraldError('CHANNEL_UNKNOWN', `channel "${input.channel}" does not exist; declare it with PUT /admin/resources/{type}`);
  }
  if (!(await companyExists(core, input.company_id))) {
    throw new HeraldError('COMPANY_NOT_FOUND', `company "${input.company_id}" does not exist`);
  }
  const now = core.now();
  const result = await core.store.publishEvent(
    {
      id: newTimedId('evt', now),
      company_id: input.company_id,
      channel: input.channel,
      object: o,
      links,
      resources,
      user_id: userId,
      idempotency_key: key,
    },
    now,
    options?.client === undefined ? undefined : { client: options.client },
  );
  // In the host's transaction nothing is claimable before its COMMIT; the NOTIFY sent at
  // that COMMIT wakes the dispatchers (polling remains the backstop).
  if (result.deliveries > 0 && options?.client === undefined) core.notify(leftFanOut(result));
  return result;
}
