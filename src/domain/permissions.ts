/**
 * A role's permissions: per plural resource name, the actions the role may perform
 * (`{"clients": ["create","read","update","delete"], "invoices": ["read"]}`).
 * Receiving `invoice.delete` requires `delete` on `invoices`.
 */
export type Permissions = Record<string, string[]>;

export function roleAllows(permissions: Permissions, plural: string, action: string): boolean {
  const actions = Object.prototype.hasOwnProperty.call(permissions, plural) ? permissions[plural] : undefined;
  return Array.isArray(actions) && actions.includes(action);
}
