import { createHash, randomBytes } from 'node:crypto';
import type { NewAccessToken, Store } from '../store/types.js';

export const TOKEN_PREFIX = 'hat_';

export function newAccessToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Each notification carries a valid access token of its subscription's grant. Tokens are
 * stored hashed, so the plaintext cannot be read back: the dispatcher mints one per grant
 * and reuses it from memory while more than half of its lifetime remains. That is one token
 * row per grant per half-lifetime per process, not one per delivery; new tokens of a batch
 * are written in one transaction before anything is sent.
 */
export class DeliveryTokens {
  private readonly cache = new Map<string, { token: string; expiresAt: number }>();
  private static readonly MAX_CACHED = 50_000;

  constructor(private readonly store: Store, private readonly ttlMs: number) {}

  async forGrants(grantIds: Iterable<string>, now: number): Promise<Map<string, { token: string; expiresAt: number }>> {
    const out = new Map<string, { token: string; expiresAt: number }>();
    const fresh: NewAccessToken[] = [];
    for (const id of grantIds) {
      if (out.has(id)) continue;
      const cached = this.cache.get(id);
      if (cached && cached.expiresAt - now > this.ttlMs / 2) {
        out.set(id, cached);
        continue;
      }
      const token = newAccessToken();
      const entry = { token, expiresAt: now + this.ttlMs };
      fresh.push({ hash: hashToken(token), grant_id: id, expires_at: entry.expiresAt, created_at: now });
      out.set(id, entry);
    }
    await this.store.insertAccessTokens(fresh);
    if (this.cache.size + fresh.length > DeliveryTokens.MAX_CACHED) this.cache.clear();
    for (const t of fresh) this.cache.set(t.grant_id, out.get(t.grant_id)!);
    return out;
  }
}
