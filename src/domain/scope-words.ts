import type { ResourceType } from './catalog.js';
import type { Permissions } from './permissions.js';
import type { Scope } from './scope.js';

const PAST: Record<string, string> = { create: 'created', update: 'updated', delete: 'deleted', archive: 'archived', restore: 'restored' };
const past = (action: string) => PAST[action] ?? `${action}d`.replace(/ed?d$/, 'ed');

function list(words: string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}

/**
 * A scope in plain words for the consent page: `clients:create` -> "Receive notifications
 * when clients are created"; `api/invoices` -> "Read and change invoices"; an empty scope
 * lists what the user's role allows, since that is what it grants.
 */
export function describeScope(scope: Scope, catalog: readonly ResourceType[], permissions: Permissions | null): string[] {
  const byPlural = new Map(catalog.map((t) => [t.plural, t]));
  if (scope.all) {
    const lines = ['Everything your role allows, now and as it changes:'];
    for (const [plural, actions] of Object.entries(permissions ?? {})) {
      const events = actions.filter((a) => byPlural.get(plural)?.actions.includes(a));
      if (events.length > 0) lines.push(`Receive notifications when ${plural} are ${list(events.map(past))}`);
    }
    lines.push('Manage its notification subscriptions');
    return lines;
  }
  return scope.entries.map((e) => {
    if (e.context === 'api/subs') return 'Manage its notification subscriptions';
    if (e.context.startsWith('api/')) return `Read and change ${e.context.slice(4)}`;
    const actions = e.actions ?? byPlural.get(e.context)?.actions ?? [];
    return `Receive notifications when ${e.context} are ${list(actions.map(past))}`;
  });
}
