import type { Pool } from 'pg';
import { COLUMNS, prefixed, signInAttemptSql, toApp, toGrant, toUser, unprefix } from '../rows.js';
import type { App, AuthCode, Grant, NewAccessToken, NewRefreshToken, OAuthStore, RefreshTokenRow, SecretKind, User } from '../types.js';
import { sql, transaction, type Queryable, type Row } from './db.js';

const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** OAuth storage on PostgreSQL; the same semantics as sqlite/oauth.ts, on the store's pool. */
export class PostgresOAuthStore implements OAuthStore {
  constructor(private readonly pool: Pool) {}

  async getAppByClientId(clientId: string): Promise<App | null> {
    const row = (await sql(this.pool, 'SELECT * FROM apps WHERE client_id = $1', [clientId])).rows[0];
    return row ? toApp(row) : null;
  }

  async previousSecrets(appId: string, kind: SecretKind, now: number): Promise<string[]> {
    const { rows } = await sql(
      this.pool,
      'SELECT secret FROM app_secrets WHERE app_id = $1 AND kind = $2 AND expires_at > $3 ORDER BY created_at DESC',
      [appId, kind, now],
    );
    return rows.map((r) => String(r.secret));
  }

  async signInCandidates(email: string): Promise<{ user: User; password_hash: string | null }[]> {
    const { rows } = await sql(this.pool, 'SELECT * FROM users WHERE email = $1 ORDER BY created_at', [email.toLowerCase()]);
    return rows.map((r) => ({ user: toUser(r), password_hash: strOrNull(r.password_hash) }));
  }

  async saveAuthCode(c: AuthCode): Promise<void> {
    await sql(
      this.pool,
      `INSERT INTO oauth_codes (hash, app_id, user_id, company_id, scope, redirect_uri, code_challenge, code_challenge_method, expires_at, created_at, used_at, grant_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [c.hash, c.app_id, c.user_id, c.company_id, c.scope, c.redirect_uri, c.code_challenge, c.code_challenge_method, c.expires_at, c.created_at, c.used_at, c.grant_id],
    );
  }

  async useAuthCode(hash: string, now: number): Promise<AuthCode | null> {
    return transaction(this.pool, async (db) => {
      // FOR UPDATE: of two concurrent redemptions the second waits and then sees used_at set.
      const row = (await sql(db, 'SELECT * FROM oauth_codes WHERE hash = $1 FOR UPDATE', [hash])).rows[0];
      if (!row) return null;
      if (row.used_at === null) await sql(db, 'UPDATE oauth_codes SET used_at = $1 WHERE hash = $2', [now, hash]);
      return toAuthCode(row);
    });
  }

  async authorize(g: Grant, codeHash: string, access: NewAccessToken, refresh: NewRefreshToken): Promise<string> {
    return transaction(this.pool, async (db) => {
      // SQLite's single writer makes "reuse the live grant or create one" atomic; here a lock on
      // (app, user, company) does, so two concurrent authorizations cannot create two grants.
      await sql(db, 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`grant:${g.app_id}:${g.user_id}:${g.company_id}`]);
      const live = (await sql(
        db,
        'SELECT id FROM grants WHERE app_id = $1 AND user_id = $2 AND company_id = $3 AND revoked_at IS NULL ORDER BY created_at DESC LIMIT 1',
        [g.app_id, g.user_id, g.company_id],
      )).rows[0];
      let grantId: string;
      if (live) {
        grantId = String(live.id);
        await sql(db, 'UPDATE grants SET scope = $1 WHERE id = $2', [g.scope, grantId]);
      } else {
        grantId = g.id;
        await sql(
          db,
          'INSERT INTO grants (id, app_id, user_id, company_id, scope, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)',
          [g.id, g.app_id, g.user_id, g.company_id, g.scope, g.created_at],
        );
      }
      await sql(db, 'UPDATE oauth_codes SET grant_id = $1 WHERE hash = $2', [grantId, codeHash]);
      await insertTokens(db, grantId, access, refresh);
      return grantId;
    });
  }

  async findRefreshToken(hash: string): Promise<{ token: RefreshTokenRow; grant: Grant } | null> {
    const row = (await sql(
      this.pool,
      `SELECT t.*, ${prefixed('g', COLUMNS.grants)} FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.hash = $1`,
      [hash],
    )).rows[0];
    if (!row) return null;
    const token: RefreshTokenRow = {
      hash: String(row.hash), grant_id: String(row.grant_id), expires_at: Number(row.expires_at),
      created_at: Number(row.created_at), used_at: numOrNull(row.used_at),
    };
    return { token, grant: toGrant(unprefix(row, 'g')!) };
  }

  async rotateRefreshToken(oldHash: string, now: number, access: NewAccessToken, refresh: NewRefreshToken): Promise<boolean> {
    return transaction(this.pool, async (db) => {
      // A concurrent rotation of the same token waits on the row lock, re-checks used_at, changes nothing.
      const changed = await sql(db, 'UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL', [now, oldHash]);
      if (changed.rowCount === 0) return false;
      await insertTokens(db, refresh.grant_id, access, refresh);
      return true;
    });
  }

  async deleteAccessToken(hash: string): Promise<boolean> {
    return ((await sql(this.pool, 'DELETE FROM access_tokens WHERE hash = $1', [hash])).rowCount ?? 0) > 0;
  }

  async listUserGrants(userIds: string[]): Promise<{ grant: Grant; app: App }[]> {
    if (userIds.length === 0) return [];
    const { rows } = await sql(
      this.pool,
      `SELECT ${prefixed('g', COLUMNS.grants)}, ${prefixed('a', COLUMNS.apps)}
       FROM grants g JOIN apps a ON a.id = g.app_id
       WHERE g.revoked_at IS NULL AND g.user_id = ANY($1::text[])
       ORDER BY g.created_at DESC`,
      [userIds],
    );
    return rows.map((r) => ({ grant: toGrant(unprefix(r, 'g')!), app: toApp(unprefix(r, 'a')!) }));
  }

  async countSignInAttempt(keyHash: string, now: number, windowMs: number): Promise<{ attempts: number; reset_at: number }> {
    await sql(this.pool, 'DELETE FROM sign_in_attempts WHERE reset_at <= $1', [now]);
    const { rows } = await sql(this.pool, signInAttemptSql('$1', '$2', '$3'), [keyHash, now + windowMs, now]);
    return { attempts: Number(rows[0]!.attempts), reset_at: Number(rows[0]!.reset_at) };
  }

  async clearSignInAttempts(keyHash: string): Promise<void> {
    await sql(this.pool, 'DELETE FROM sign_in_attempts WHERE key_hash = $1', [keyHash]);
  }
}

async function insertTokens(db: Queryable, grantId: string, access: NewAccessToken, refresh: NewRefreshToken): Promise<void> {
  await sql(db, 'INSERT INTO access_tokens (hash, grant_id, expires_at, created_at) VALUES ($1, $2, $3, $4)', [access.hash, grantId, access.expires_at, access.created_at]);
  await sql(
    db,
    'INSERT INTO refresh_tokens (hash, grant_id, expires_at, created_at, used_at) VALUES ($1, $2, $3, $4, NULL)',
    [refresh.hash, grantId, refresh.expires_at, refresh.created_at],
  );
}

function toAuthCode(r: Row): AuthCode {
  return {
    hash: String(r.hash),
    app_id: String(r.app_id),
    user_id: String(r.user_id),
    company_id: String(r.company_id),
    scope: String(r.scope),
    redirect_uri: String(r.redirect_uri),
    code_challenge: strOrNull(r.code_challenge),
    code_challenge_method: strOrNull(r.code_challenge_method),
    expires_at: Number(r.expires_at),
    created_at: Number(r.created_at),
    used_at: numOrNull(r.used_at),
    grant_id: strOrNull(r.grant_id),
  };
}
