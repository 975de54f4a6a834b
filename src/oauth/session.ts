import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OAuthStore } from '../store/types.js';

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

/**
 * Sign-in attempts, per client address and email: 5 failures in 15 minutes, then 429 until
 * the window ends. The attempts are counted in the store (OAuthStore.countSignInAttempt), so
 * every process sharing the database counts them together, and each attempt is counted before
 * its password is checked, in one statement: concurrent attempts cannot all slip through
 * before the failures are recorded. A success forgets them. The key is stored as its SHA-256,
 * not in clear. A key this process has seen over the limit is refused from memory until its
 * window ends, so a flood of refused guesses writes nothing.
 */
export class SignInLimiter {
  constructor(
    private readonly store: Pick<OAuthStore, 'countSignInAttempt' | 'clearSignInAttempts'>,
    private readonly maxFailures = 5,
    private readonly windowMs = 15 * 60_000,
  ) {}

  /** Keys seen over the limit, with the end of their window (at most BLOCKED_KEPT). */
  private readonly blockedUntil = new Map<string, number>();

  /** Counts this attempt; false when it is over the limit (answer 429 without checking the password). */
  async attempt(ip: string, email: string, now = Date.now()): Promise<boolean> {
    const key = keyHash(ip, email);
    const until = this.blockedUntil.get(key);
    if (until !== undefined && until > now) return false;
    const { attempts, reset_at } = await this.store.countSignInAttempt(key, now, this.windowMs);
    if (attempts <= this.maxFailures) return true;
    if (this.blockedUntil.size >= BLOCKED_KEPT) for (const [k, end] of this.blockedUntil) if (end <= now) this.blockedUntil.delete(k);
    if (this.blockedUntil.size < BLOCKED_KEPT) this.blockedUntil.set(key, reset_at);
    return false;
  }

  async succeeded(ip: string, email: string): Promise<void> {
    await this.store.clearSignInAttempts(keyHash(ip, email));
  }
}

const BLOCKED_KEPT = 10_000;

const keyHash = (ip: string, email: string): string => createHash('sha256').update(`${ip}\n${email}`).digest('hex');
