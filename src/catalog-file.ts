import { readFileSync } from 'node:fs';
import { ConfigError } from './config.js';

/**
 * The catalog file (`HERALD_CATALOG`) declares resource types at start, as
 * `PUT /admin/resources/{type}` does:
 * `{"resources": {"client": {"plural": "clients"}, "task": {"plural": "tasks", "parents": ["project"]}}}`.
 */
export function readCatalogFile(path: string): Array<{ type: string; plural: string; actions?: string[]; parents?: string[] }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`HERALD_CATALOG: cannot read ${path} as JSON: ${(err as Error).message}`);
  }
  const resources = (parsed as { resources?: unknown })?.resources;
  if (typeof resources !== 'object' || resources === null || Array.isArray(resources)) {
    throw new ConfigError(`HERALD_CATALOG: ${path} must be {"resources": {"<type>": {"plural": "..."}}}`);
  }
  return Object.entries(resources as Record<string, Record<string, unknown>>).map(([type, body]) => {
    if (typeof body?.plural !== 'string') throw new ConfigError(`HERALD_CATALOG: resource "${type}" needs a "plural"`);
    return { type, ...(body as { plural: string; actions?: string[]; parents?: string[] }) };
  });
}
