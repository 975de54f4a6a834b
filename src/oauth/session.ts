import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The sign-in session of the OAuth pages: a cookie holding the signed-in user rows (one per
 * company the person belongs to) and the one chosen, HMAC-signed with a secret kept in the
 * store, HttpOnly, SameSite=Lax, Secure when Herald is served over https. 8 hours.
 */
export interface Session {
  uids: string[];
  chosen: string | null;
  exp: number;
}

export const SESSION_COOKIE = 'herald_session';
export const CSRF_COOKIE = 'herald_csrf';
const SESSION_MS = 8 * 3600_000;

export class Sessions {
  constructor(private readonly secret: string, private readonly secure: boolean) {}

  private sign(value: string): string {
    return createHmac('sha256', this.secret).update(value).digest('base64url');
  }

  read(request: FastifyRequest): Session | null {
    const raw = request.cookies[SESSION_COOKIE];
    if (!raw) return null;
    const dot = raw.lastIndexOf('.');
    const body = raw.slice(0, dot);
    const given = Buffer.from(raw.slice(dot + 1));
    const expected = Buffer.from(this.sign(body));
    if (dot < 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      const s = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Session;
      return Array.isArray(s.uids) && typeof s.exp === 'number' && s.exp > Date.now() ? s : null;
    } catch {
      return null;
    }
  }

  write(reply: FastifyReply, s: Omit<Session, 'exp'>): void {
    const body = Buffer.from(JSON.stringify({ ...s, exp: Date.now() + SESSION_MS })).toString('base64url');
    reply.setCookie(SESSION_COOKIE, `${body}.${this.sign(body)}`, this.cookieOptions(SESSION_MS));
  }

  clear(reply: FastifyReply): void {
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
  }

  /**
   * Double-submit CSRF token: a random cookie that every form echoes in a hidden field.
   * A cross-site page can make the browser send the cookie, but cannot read it to echo it.
   */
  csrf(request: FastifyRequest, reply: FastifyReply): string {
    const existing = request.cookies[CSRF_COOKIE];
    if (existing && /^[A-Za-z0-9_-]{32,}$/.test(existing)) return existing;
    const token = randomBytes(24).toString('base64url');
    reply.setCookie(CSRF_COOKIE, token, this.cookieOptions(SESSION_MS));
    return token;
  }

  checkCsrf(request: FastifyRequest, field: unknown): boolean {
    const cookie = request.cookies[CSRF_COOKIE];
    if (!cookie || typeof field !== 'string' || field.length !== cookie.length) return false;
    return timingSafeEqual(Buffer.from(field), Buffer.from(cookie));
  }

  private cookieOptions(maxAgeMs: number) {
    return { path: '/', httpOnly: true, sameSite: 'lax' as const, secure: this.secure, maxAge: Math.floor(maxAgeMs / 1000) };
  }
}

/** Failed sign-ins, per address and email: 5 per 15 minutes, then 429 until the window ends. */
export class SignInLimiter {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();
  constructor(private readonly max = 5, private readonly windowMs = 15 * 60_000) {}

  blocked(key: string, now = Date.now()): boolean {
    const f = this.failures.get(key);
    return !!f && f.resetAt > now && f.count >= this.max;
  }

  fail(key: string, now = Date.now()): void {
    const f = this.failures.get(key);
    if (!f || f.resetAt <= now) this.failures.set(key, { count: 1, resetAt: now + this.windowMs });
    else f.count++;
    if (this.failures.size > 100_000) for (const [k, v] of this.failures) if (v.resetAt <= now) this.failures.delete(k);
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }
}
