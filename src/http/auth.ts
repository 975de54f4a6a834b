import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HeraldError } from '../domain/errors.js';

/** `Authorization: Bearer <token>`, or with `query` `?access_token=` (CONTRACT section 3, public API only). */
export function bearerToken(request: FastifyRequest, query = true): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return m?.[1];
  }
  if (!query) return undefined;
  const q = (request.query as Record<string, unknown> | undefined)?.access_token;
  return typeof q === 'string' && q.length > 0 ? q : undefined;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Checks the admin bearer token against its stored SHA-256 hash, in constant time. */
export function adminGuard(adminTokenHash: string) {
  const expected = Buffer.from(adminTokenHash, 'hex');
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request, false);
    if (!token || !timingSafeEqual(sha256(token), expected)) {
      throw new HeraldError('UNAUTHENTICATED', 'the admin API needs "Authorization: Bearer $HERALD_ADMIN_TOKEN"');
    }
  };
}

export const hashAdminToken = (token: string): string => sha256(token).toString('hex');
