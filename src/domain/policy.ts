import { resolveChannel, type ResourceType } from './catalog.js';
import type { ErrorCode } from './errors.js';
import { roleAllows, type Permissions } from './permissions.js';
import { scopeAllowsNotification, type Scope } from './scope.js';

/**
 * "May this grant receive this channel?": the single rule asked at subscribe time (to refuse)
 * and again at delivery time (to drop). Keeping it here is what keeps the two in agreement.
 */
export type Decision = { ok: true } | { ok: false; code: ErrorCode; reason: string };

export interface ReceiverContext {
  scope: Scope;
  /** The user's role permissions, or null when the user or the role no longer exists. */
  permissions: Permissions | null;
  roleName: string;
  revoked: boolean;
}

export function mayReceive(catalog: readonly ResourceType[], channel: string, who: ReceiverContext): Decision {
  if (who.revoked) return { ok: false, code: 'UNAUTHENTICATED', reason: 'grant revoked' };
  const resolved = resolveChannel(catalog, channel);
  if (!resolved) return { ok: false, code: 'CHANNEL_UNKNOWN', reason: `channel "${channel}" does not exist` };
  const { resource, action } = resolved;
  if (!scopeAllowsNotification(who.scope, resource.plural, action)) {
    return {
      ok: false,
      code: 'SCOPE_MISSING',
      reason: `scope does not grant "${resource.plural}:${action}" (needed for "${channel}")`,
    };
  }
  if (!who.permissions) return { ok: false, code: 'ROLE_FORBIDS', reason: `role "${who.roleName}" no longer exists` };
  if (!roleAllows(who.permissions, resource.plural, action)) {
    return {
      ok: false,
      code: 'ROLE_FORBIDS',
      reason: `role "${who.roleName}" may not "${action}" ${resource.plural} (needed for "${channel}")`,
    };
  }
  return { ok: true };
}
