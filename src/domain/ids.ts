import { randomBytes } from 'node:crypto';

/**
 * Prefixed random ids (`sub_…`, `evt_…`), Stripe-style: the prefix tells a reader what an id
 * names, and 16 random bytes (128 bits) make them unguessable across tenants.
 */
export type IdPrefix = 'co' | 'usr' | 'app' | 'grt' | 'sub' | 'evt' | 'dlv' | 'att' | 'tok';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
}

/** A secret for a client or a token: 32 random bytes, base64url. */
export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
