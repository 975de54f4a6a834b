import { HeraldError } from './errors.js';

/**
 * OAuth scopes, SalesKing grammar: entries separated by spaces, each `context[:action,action]`.
 * API scopes carry the `api/` prefix (`api/subs`, `api/clients`); notification scopes do not
 * (`clients` = every action, `clients:create,update` = those two). An empty scope string
 * means "everything the user's role allows".
 */
export interface ScopeEntry {
  context: string;
  /** null: every action of that context. */
  actions: string[] | null;
}

export interface Scope {
  all: boolean;
  entries: ScopeEntry[];
}

const CONTEXT = /^(api\/)?[a-z][a-z0-9_]{0,62}$/;
const ACTION = /^[a-z][a-z0-9_]{0,62}$/;
const MAX_SCOPE_LENGTH = 2000;

/** Parses a scope string or throws SCOPE_INVALID naming the bad entry. */
export function parseScope(raw: string): Scope {
  if (raw.length > MAX_SCOPE_LENGTH) throw new HeraldError('SCOPE_INVALID', `scope is longer than ${MAX_SCOPE_LENGTH} characters`);
  const parts = raw.split(' ').filter((p) => p.length > 0);
  if (parts.length === 0) return { all: true, entries: [] };
  const entries = parts.map((part): ScopeEntry => {
    const colon = part.indexOf(':');
    const context = colon < 0 ? part : part.slice(0, colon);
    if (!CONTEXT.test(context)) throw new HeraldError('SCOPE_INVALID', `scope entry "${part}" has an invalid context`);
    if (colon < 0) return { context, actions: null };
    const actions = part.slice(colon + 1).split(',');
    for (const a of actions) {
      if (!ACTION.test(a)) throw new HeraldError('SCOPE_INVALID', `scope entry "${part}" has an invalid action "${a}"`);
    }
    return { context, actions };
  });
  return { all: false, entries };
}

/** The canonical text of a scope: entries in the given order, single spaces. */
export function formatScope(scope: Scope): string {
  return scope.entries.map((e) => (e.actions ? `${e.context}:${e.actions.join(',')}` : e.context)).join(' ');
}

/** Does the scope grant notifications for `plural.action` (the notification scope, no `api/`)? */
export function scopeAllowsNotification(scope: Scope, plural: string, action: string): boolean {
  if (scope.all) return true;
  return scope.entries.some((e) => e.context === plural && (e.actions === null || e.actions.includes(action)));
}

/** Does the scope grant the API scope `api/<name>` (e.g. `api/subs`)? */
export function scopeAllowsApi(scope: Scope, name: string): boolean {
  return scope.all || scope.entries.some((e) => e.context === `api/${name}`);
}
