import type { App, AuthCode, Grant, NewAccessToken, NewRefreshToken, OAuthStore, RefreshTokenRow, SecretKind, User } from '../types.js';
import { COLUMNS, prefixed, signInAttemptSql, toApp, toGrant, toUser, unprefix } from '../rows.js';
import type { SqliteStore } from './sqlite-store.js';

type Row = Record<string, unknown>;

/** OAuth storage on SQLite; shares the store's connection, statement cache and write lock. */
export class SqliteOAuthStore implements OAuthStore {
  constructor(private readonly s: SqliteStore) {}

  async getAppByClientId(clientId: string): Promise<App | null> {
    const row = this.s.q('SELECT * FROM apps WHERE client_id = ?').get(clientId) as Row | undefined;
    return row ? toApp(row) : null;
  }

  async previousSecrets(appId: string, kind: SecretKind, now: number): Promise<string[]> {
    const rows = this.s.q('SELECT secret FROM app_secrets WHERE app_id = ? AND kind = ? AND expires_at > ? ORDER BY created_at DESC').all(appId, kind, now) as Row[];
    return rows.map((r) => String(r.secret));
  }

  async signInCandidates(email: string): Promise<{ user: User; password_hash: string | null }[]> {
    const rows = this.s.q('SELECT * FROM users WHERE email = ? ORDER BY created_at').all(email.toLowerCase()) as Row[];
    return rows.map((r) => ({ user: toUser(r), password_hash: r.password_hash === null ? null : String(r.password_hash) }));
  }

  async saveAuthCode(c: AuthCode): Promise<void> {
    this.s.q(
      `INSERT INTO oauth_codes (hash, app_id, user_id, company_id, scope, redirect_uri, code_challenge, code_challenge_method, expires_at, created_at, used_at, grant_id)
       VALUES (@hash, @app_id, @user_id, @company_id, @scope, @redirect_uri, @code_challenge, @code_challenge_method, @expires_at, @created_at, @used_at, @grant_id)`,
    ).run(c);
  }

  async useAuthCode(hash: string, now: number): Promise<AuthCode | null> {
    return this.s.write(() => {
      const row = this.s.q('SELECT * FROM oauth_codes WHERE hash = ?').get(hash) as AuthCode | undefined;
      if (!row) return null;
      if (row.used_at === null) this.s.q('UPDATE oauth_codes SET used_at = ? WHERE hash = ?').run(now, hash);
      return row;
    });
  }

  async authorize(g: Grant, codeHash: string, access: NewAccessToken, refresh: NewRefreshToken): Promise<string> {
    return this.s.write(() => {
      const live = this.s.q('SELECT id FROM grants WHERE app_id = ? AND user_id = ? AND company_id = ? AND revoked_at IS NULL ORDER BY created_at DESC LIMIT 1')
        .get(g.app_id, g.user_id, g.company_id) as Row | undefined;
      let grantId: string;
      if (live) {
        grantId = String(live.id);
        this.s.q('UPDATE grants SET scope = ? WHERE id = ?').run(g.scope, grantId);
      } else {
        grantId = g.id;
        this.s.q(
          `INSERT INTO grants (id, app_id, user_id, company_id, scope, created_at, revoked_at)
           VALUES (@id, @app_id, @user_id, @company_id, @scope, @created_at, NULL)`,
        ).run(g);
      }
      this.s.q('UPDATE oauth_codes SET grant_id = ? WHERE hash = ?').run(grantId, codeHash);
      this.insertTokens(grantId, access, refresh);
      return grantId;
    });
  }

  private insertTokens(grantId: string, access: NewAccessToken, refresh: NewRefreshToken): void {
    this.s.q('INSERT INTO access_tokens (hash, grant_id, expires_at, created_at) VALUES (?, ?, ?, ?)').run(access.hash, grantId, access.expires_at, access.created_at);
    this.s.q('INSERT INTO refresh_tokens (hash, grant_id, expires_at, created_at, used_at) VALUES (?, ?, ?, ?, NULL)').run(refresh.hash, grantId, refresh.expires_at, refresh.created_at);
  }

  async findRefreshToken(hash: string): Promise<{ token: RefreshTokenRow; grant: Grant } | null> {
    const row = this.s.q(`SELECT t.*, ${prefixed('g', COLUMNS.grants)} FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = ?`).get(hash) as Row | undefined;
    if (!row) return null;
    const token: RefreshTokenRow = {
      hash: String(row.hash), grant_id: String(row.grant_id), expires_at: Number(row.expires_at),
      created_at: Number(row.created_at), used_at: row.used_at === null ? null : Number(row.used_at),
    };
    return { token, grant: toGrant(unprefix(row, 'g')!) };
  }

  async rotateRefreshToken(oldHash: string, now: number, access: NewAccessToken, refresh: NewRefreshToken): Promise<boolean> {
    return this.s.write(() => {
      const changed = this.s.q('UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL').run(now, oldHash).changes;
      if (changed === 0) return false;
      this.insertTokens(refresh.grant_id, access, refresh);
      return true;
    });
  }

  async deleteAccessToken(hash: string): Promise<boolean> {
    return this.s.q('DELETE FROM access_tokens WHERE hash = ?').run(hash).changes > 0;
  }

  async listUserGrants(userIds: string[]): Promise<{ grant: Grant; app: App }[]> {
    if (userIds.length === 0) return [];
    const rows = this.s.q(
      `SELECT ${prefixed('g', COLUMNS.grants)}, ${prefixed('a', COLUMNS.apps)}
       FROM grants g JOIN apps a ON a.id = g.app_id
       WHERE g.revoked_at IS NULL AND g.user_id IN (SELECT value FROM json_each(?))
       ORDER BY g.created_at DESC`,
    ).all(JSON.stringify(userIds)) as Row[];
    return rows.map((r) => ({ grant: toGrant(unprefix(r, 'g')!), app: toApp(unprefix(r, 'a')!) }));
  }

  async countSignInAttempt(keyHash: string, now: number, windowMs: number): Promise<{ attempts: number; reset_at: number }> {
    // Relaxed (no fsync): a power cut that takes the last counts away only lets those guesses
    // be made again, and an attacker's flood of sign-ins must not cost the disk a sync each.
    return this.s.writeRelaxed(() => {
      this.s.q('DELETE FROM sign_in_attempts WHERE reset_at <= ?').run(now);
      const row = this.s.q(signInAttemptSql('@key', '@reset', '@now')).get({ key: keyHash, reset: now + windowMs, now }) as Row;
      return { attempts: Number(row.attempts), reset_at: Number(row.reset_at) };
    });
  }

  async clearSignInAttempts(keyHash: string): Promise<void> {
    this.s.q('DELETE FROM sign_in_attempts WHERE key_hash = ?').run(keyHash);
  }
}
