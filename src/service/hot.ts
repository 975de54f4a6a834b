import type { ResourceType } from '../domain/catalog.js';
import type { Core } from './context.js';

/**
 * What the hot paths (every publish, every dispatch batch) read from the store and may keep:
 * the catalog, read again after CATALOG_MAX_AGE_MS or when it does not know a channel, and
 * the ids of companies known to exist (companies are never deleted). On PostgreSQL these were
 * two of a publish's three round trips; at 1,000 publishes/s the process spent half its time
 * in the socket writes of pg queries (profile of bench/latency.ts).
 *
 * A resource type declared here is seen at once (declareResourceType calls catalogChanged);
 * one declared by another process is found on the first miss. An action removed by another
 * process can still be accepted for up to CATALOG_MAX_AGE_MS.
 */
const CATALOG_MAX_AGE_MS = 1000;

interface Hot {
  catalog: Promise<ResourceType[]> | null;
  readAt: number;
  companies: Set<string>;
}

const hot = new WeakMap<Core, Hot>();

function of(core: Core): Hot {
  let h = hot.get(core);
  if (!h) {
    h = { catalog: null, readAt: 0, companies: new Set() };
    hot.set(core, h);
  }
  return h;
}

/** The catalog, at most CATALOG_MAX_AGE_MS old; `fresh` reads it again now. */
export function recentCatalog(core: Core, fresh = false): Promise<ResourceType[]> {
  const h = of(core);
  if (!fresh && h.catalog && core.now() - h.readAt <= CATALOG_MAX_AGE_MS) return h.catalog;
  const read = core.catalog();
  h.catalog = read;
  h.readAt = core.now();
  read.catch(() => {
    if (h.catalog === read) h.catalog = null;
  });
  return read;
}

/** After a change to the catalog in this process. */
export function catalogChanged(core: Core): void {
  of(core).catalog = null;
}

/** Whether the company exists; only a yes is kept. */
export async function companyExists(core: Core, id: string): Promise<boolean> {
  const h = of(core);
  if (h.companies.has(id)) return true;
  if (!(await core.store.getCompany(id))) return false;
  if (h.companies.size >= MAX_COMPANIES_KEPT) h.companies.clear();
  h.companies.add(id);
  return true;
}

/** Bounds the memory of companyExists (an id is at most 255 characters). */
const MAX_COMPANIES_KEPT = 100_000;
