import { createHash, timingSafeEqual } from 'node:crypto';
import OAuth2Server, { type AuthorizationCodeModel, type RefreshTokenModel, type Client, type User as OAuthUser, type Token, type AuthorizationCode, type RefreshToken, type Falsey } from '@node-oauth/oauth2-server';
import { newId, newSecret } from '../domain/ids.js';
import { formatScope, parseScope } from '../domain/scope.js';
import { hashToken, newAccessToken } from '../delivery/tokens.js';
import type { Core } from '../service/context.js';
import type { App } from '../store/types.js';

/** The user an authorization acts for: one user row, so one company. */
export interface OAuthSubject extends OAuthUser {
  id: string;
  company_id: string;
  /** Set on refresh: the grant the refresh token belongs to. */
  grant_id?: string;
}

export const REFRESH_TOKEN_PREFIX = 'hrt_';
export const CODE_LIFETIME_SECONDS = 60;
export const REFRESH_TOKEN_LIFETIME_SECONDS = 30 * 86400;

const sha = (s: string) => createHash('sha256').update(s).digest();

function clientOf(app: App, accessTokenLifetime: number): Client {
  return {
    id: app.client_id,
    redirectUris: app.redirect_uris,
    grants: ['authorization_code', 'refresh_token'],
    accessTokenLifetime,
    refreshTokenLifetime: REFRESH_TOKEN_LIFETIME_SECONDS,
    app,
  };
}

/**
 * @node-oauth/oauth2-server's model, over Herald's Store: an OAuth grant IS a Herald grant
 * (the same row `POST /admin/grants` writes), and codes and tokens are stored hashed.
 * Refresh tokens rotate; presenting a rotated one again, or replaying a code, revokes the
 * grant (and so its tokens and subscriptions), as OAuth 2.0 Security BCP section 4.14 asks.
 */
export function oauthModel(core: Core): AuthorizationCodeModel & RefreshTokenModel {
  const ttl = Math.floor(core.config.accessTokenTtlMs / 1000);
  const { oauth } = core.store;
  return {
    async getClient(clientId: string, clientSecret: string | null | undefined): Promise<Client | Falsey> {
      const app = await oauth.getAppByClientId(clientId);
      if (!app) return null;
      if (clientSecret === null) return clientOf(app, ttl); // authorize endpoint: no authentication there
      if (clientSecret === undefined) return app.public_client ? clientOf(app, ttl) : null; // PKCE-only: public clients
      const secrets = [app.client_secret, ...(await oauth.previousSecrets(app.id, 'client', core.now()))];
      const given = sha(clientSecret);
      return secrets.some((s) => timingSafeEqual(sha(s), given)) ? clientOf(app, ttl) : null;
    },

    async validateScope(_user: OAuthUser, _client: Client, scope?: string[]): Promise<string[] | Falsey> {
      const text = (scope ?? []).join(' ');
      let parsed;
      try {
        parsed = parseScope(text);
      } catch {
        return false;
      }
      const plurals = new Set((await core.catalog()).map((t) => t.plural));
      const known = parsed.entries.every((e) => plurals.has(e.context.replace(/^api\//, '')) || e.context === 'api/subs');
      return known ? (formatScope(parsed) === '' ? [] : formatScope(parsed).split(' ')) : false;
    },

    async verifyScope(token: Token, scope: string[]): Promise<boolean> {
      const have = new Set(token.scope ?? []);
      return scope.every((s) => have.has(s));
    },

    generateAccessToken: async () => newAccessToken(),
    generateRefreshToken: async () => `${REFRESH_TOKEN_PREFIX}${newSecret()}`,
    generateAuthorizationCode: async () => `hac_${newSecret()}`,

    async saveAuthorizationCode(code, client, user): Promise<AuthorizationCode> {
      const subject = user as OAuthSubject;
      await oauth.saveAuthCode({
        hash: hashToken(code.authorizationCode),
        app_id: (client.app as App).id,
        user_id: subject.id,
        company_id: subject.company_id,
        scope: (code.scope ?? []).join(' '),
        redirect_uri: code.redirectUri,
        code_challenge: code.codeChallenge ?? null,
        code_challenge_method: code.codeChallengeMethod ?? null,
        expires_at: code.expiresAt.getTime(),
        created_at: core.now(),
        used_at: null,
        grant_id: null,
      });
      return { ...code, client, user };
    },

    async getAuthorizationCode(authorizationCode: string): Promise<AuthorizationCode | Falsey> {
      const row = await oauth.useAuthCode(hashToken(authorizationCode), core.now());
      if (!row) return null;
      if (row.used_at !== null) {
        // A replayed code: whatever it issued is compromised.
        if (row.grant_id) await core.store.revokeGrant(row.grant_id, core.now());
        core.log.warn({ app: row.app_id }, 'authorization code replayed: its grant is revoked');
        return null;
      }
      const app = await core.store.getApp(row.app_id);
      if (!app) return null;
      return {
        authorizationCode,
        expiresAt: new Date(row.expires_at),
        redirectUri: row.redirect_uri,
        scope: row.scope === '' ? [] : row.scope.split(' '),
        client: clientOf(app, ttl),
        user: { id: row.user_id, company_id: row.company_id, code_hash: hashToken(authorizationCode) },
        ...(row.code_challenge ? { codeChallenge: row.code_challenge, codeChallengeMethod: row.code_challenge_method ?? 'plain' } : {}),
      };
    },

    // The code was already marked used by getAuthorizationCode (atomically), so nothing to do.
    revokeAuthorizationCode: async () => true,

    async saveToken(token, client, user): Promise<Token> {
      const subject = user as OAuthSubject & { code_hash?: string };
      const app = client.app as App;
      const now = core.now();
      const access = { hash: hashToken(token.accessToken), grant_id: '', expires_at: token.accessTokenExpiresAt!.getTime(), created_at: now };
      const refresh = { hash: hashToken(token.refreshToken!), grant_id: '', expires_at: token.refreshTokenExpiresAt!.getTime(), created_at: now };
      const scope = (token.scope ?? []).join(' ');
      if (subject.grant_id) {
        // Refresh: rotate inside one transaction; a concurrent second use loses and revokes.
        const grantId = subject.grant_id;
        const rotated = await oauth.rotateRefreshToken(subject.old_refresh_hash as string, now, { ...access, grant_id: grantId }, { ...refresh, grant_id: grantId });
        if (!rotated) {
          await core.store.revokeGrant(grantId, now);
          throw new OAuth2Server.InvalidGrantError('Invalid grant: refresh token was already used; the grant is revoked');
        }
      } else {
        await oauth.authorize(
          { id: newId('grt'), app_id: app.id, user_id: subject.id, company_id: subject.company_id, scope, created_at: now, revoked_at: null },
          subject.code_hash as string,
          access,
          refresh,
        );
      }
      return { ...token, client, user };
    },

    async getRefreshToken(refreshToken: string): Promise<RefreshToken | Falsey> {
      const hash = hashToken(refreshToken);
      const found = await oauth.findRefreshToken(hash);
      if (!found) return null;
      const { token, grant } = found;
      if (grant.revoked_at !== null) return null;
      if (token.used_at !== null) {
        // Reuse of a rotated refresh token: someone else has it. Revoke the whole grant.
        await core.store.revokeGrant(grant.id, core.now());
        core.log.warn({ grant: grant.id }, 'rotated refresh token reused: grant revoked');
        return null;
      }
      const app = await core.store.getApp(grant.app_id);
      if (!app) return null;
      return {
        refreshToken,
        refreshTokenExpiresAt: new Date(token.expires_at),
        scope: grant.scope === '' ? [] : grant.scope.split(' '),
        client: clientOf(app, ttl),
        user: { id: grant.user_id, company_id: grant.company_id, grant_id: grant.id, old_refresh_hash: hash },
      };
    },

    // Rotation happens in saveToken, atomically with issuing the new pair.
    revokeToken: async () => true,

    async getAccessToken(accessToken: string): Promise<Token | Falsey> {
      const ctx = await core.store.findAccessToken(hashToken(accessToken));
      if (!ctx) return null;
      return {
        accessToken,
        accessTokenExpiresAt: new Date(ctx.expires_at),
        scope: ctx.grant.scope === '' ? [] : ctx.grant.scope.split(' '),
        client: clientOf(ctx.app, ttl),
        user: { id: ctx.user.id, company_id: ctx.grant.company_id, grant_id: ctx.grant.id },
      };
    },
  };
}
