import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Migration {
  version: string;
  sql: string;
}

/**
 * Plain SQL migrations, one folder per engine (`migrations/<engine>/NNN_name.sql`), applied
 * in name order. The folder sits at the package root, two levels above both src/store/ and
 * dist/store/, so the same path works from source and from the build.
 */
export function loadMigrations(engine: 'sqlite' | 'postgres'): Migration[] {
  const dir = fileURLToPath(new URL(`../../migrations/${engine}/`, import.meta.url));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => ({ version: f.replace(/\.sql$/, ''), sql: readFileSync(`${dir}${f}`, 'utf8') }));
}
