import type { ResourceType } from '../domain/catalog.js';
import type { Permissions } from '../domain/permissions.js';
import type { EventFacts, ResourceRef } from '../domain/subscription.js';

/**
 * The storage contract. Every engine (sqlite/, postgres/) implements this one interface,
 * and one contract test suite runs against each. Methods are named after what the domain
 * needs, not after tables. Times are epoch milliseconds.
 */
export interface Store {
  readonly engine: string;
  readonly capabilities: StoreCapabilities;
  /** The OAuth 2.0 authorization server's storage (codes, refresh tokens, sign-in lookups). */
  readonly oauth: OAuthStore;

  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional (engines with `supportsListenNotify`): calls `onWork` when another process has
   * queued deliveries, and once after every (re)connect, since hints sent meanwhile are lost.
   * Only a latency hint: the dispatcher's polling stays the backstop. Resolves to a function
   * that stops listening; close() stops any listener still open.
   */
  listen?(onWork: (fanOut: boolean) => void): Promise<() => Promise<void>>;

  /** Stores `value` under `key` unless one is there; returns whichever is stored. */
  settingIfAbsent(key: string, value: string): Promise<string>;

  putResourceType(type: ResourceType): Promise<void>;
  listResourceTypes(): Promise<ResourceType[]>;

  createCompany(company: Company): Promise<void>;
  getCompany(id: string): Promise<Company | null>;
  putRole(role: Role): Promise<void>;
  getRole(companyId: string, name: string): Promise<Role | null>;
  createUser(user: User, passwordHash: string | null): Promise<void>;
  getUser(companyId: string, id: string): Promise<User | null>;
  getUserById(id: string): Promise<User | null>;
  setUserRole(companyId: string, id: string, role: string, now: number): Promise<User | null>;
  /** Sets the sign-in password (its scrypt hash). False when there is no such user. */
  setUserPassword(companyId: string, id: string, passwordHash: string, now: number): Promise<boolean>;
  createApp(app: App): Promise<void>;
  getApp(id: string): Promise<App | null>;
  /**
   * Replaces the app's `client` or `signing` secret with `secret`; the old one keeps signing
   * until `graceUntil`. Returns the updated app, or null when there is no such app.
   */
  rotateAppSecret(appId: string, kind: SecretKind, secret: string, graceUntil: number, now: number): Promise<App | null>;

  /** A grant and its first access token, in one transaction. */
  createGrant(grant: Grant, token: NewAccessToken): Promise<void>;
  getGrant(id: string): Promise<Grant | null>;
  /**
   * Revokes a grant in one transaction: its tokens are deleted, its subscriptions removed and
   * their pending deliveries dropped. False when there is no such live grant.
   */
  revokeGrant(id: string, now: number): Promise<boolean>;
  insertAccessTokens(tokens: NewAccessToken[]): Promise<void>;
  /** The live token with this SHA-256 hash, with what it acts for; null if unknown or revoked. */
  findAccessToken(hash: string): Promise<TokenContext | null>;

  createSubscription(sub: Subscription): Promise<void>;
  getSubscription(owner: Owner, id: string): Promise<Subscription | null>;
  listSubscriptions(owner: Owner): Promise<Subscription[]>;
  updateSubscription(owner: Owner, sub: Subscription): Promise<boolean>;
  /** Deletes it and drops its pending deliveries with `reason`. */
  deleteSubscription(owner: Owner, id: string, reason: string, now: number): Promise<boolean>;

  /**
   * Stores an event and one pending delivery per matching subscription, atomically. With an
   * idempotency key already used in that company, stores nothing and returns the first id.
   * With `options.client` (transactional publish, PostgreSQL only; SQLite refuses it with
   * VALIDATION_FAILED) the statements run on the host's client inside the host's own
   * transaction, with no BEGIN/COMMIT of Herald's: the host's COMMIT makes the event and its
   * deliveries (and the NOTIFY hint), its ROLLBACK leaves nothing.
   */
  publishEvent(event: NewEvent, now: number, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Queues the next chunk (FAN_OUT_CHUNK) of the oldest fan-out that its publish left
   * unfinished (an event matching more subscriptions than that), in one transaction with the
   * move of its cursor; null when none is left. Subscriptions created after the event are
   * passed over. Several processes may call it at once: each works on a different fan-out.
   */
  expandFanOut(now: number): Promise<FanOutProgress | null>;
  /**
   * Claims up to `limit` due deliveries for `leaseMs`: until then nobody else claims them; if
   * the claimer dies they come back by themselves. Returns everything needed to send them.
   * With `room`, at most `room.perOrigin` minus what the caller already has in flight to an
   * origin (`room.inFlight`, keyed by `originKey`) are claimed for each receiver origin.
   */
  claimDueDeliveries(limit: number, now: number, leaseMs: number, room?: ClaimRoom): Promise<ClaimedDelivery[]>;
  /**
   * Optional (engines where a statement is a round trip): recordOutcomes(outcomes) and
   * claimDueDeliveries(limit, now, leaseMs, room) in one round trip where it can. The claim
   * need not see the outcomes (it never claims a delivery its caller still holds the lease
   * of). If it throws, the outcomes are to be recorded again: none was, unless the connection
   * failed after the commit, and then recording them again changes nothing and logs no
   * attempt twice (PostgreSQL migration 011, SQLite 009).
   */
  recordAndClaim?(outcomes: DeliveryOutcome[], limit: number, now: number, leaseMs: number, room?: ClaimRoom): Promise<ClaimedDelivery[]>;
  /**
   * Stores a `ping` event and one delivery to `subscription` already leased to the caller
   * (for the test-delivery call, which sends it at once), and returns it as claimed.
   */
  createPing(event: NewEvent, subscriptionId: string, appId: string, now: number, leaseMs: number): Promise<ClaimedDelivery>;
  /** Records a batch of outcomes (attempts and state changes) in one transaction. */
  recordOutcomes(outcomes: DeliveryOutcome[]): Promise<void>;
  /** The earliest `next_attempt_at` of a pending delivery, or null when none is pending. */
  nextDueAt(): Promise<number | null>;
  listDeliveries(filter: DeliveryFilter): Promise<Delivery[]>;
  getDelivery(id: string): Promise<Delivery | null>;
  listAttempts(deliveryId: string): Promise<Attempt[]>;
  /**
   * Retention: deletes what can never be needed again and is older than `before`, in
   * transactions of at most `batchSize` rows each (repeated until a batch comes back short),
   * so no lock is held for long. Deleted: events created before `before` whose deliveries are
   * all terminal (succeeded, failed, dropped) and last changed before `before`, with those
   * deliveries and their attempts; access tokens, refresh tokens and OAuth codes that expired
   * (codes: or were used) before `before`; rotated app secrets whose grace ended before
   * `before`. Never a pending delivery, nor an event that still has one. Stops between
   * batches once `signal` is aborted. Returns the number of rows deleted, all tables together.
   */
  prune(before: number, batchSize: number, signal?: AbortSignal): Promise<number>;
}

/**
 * A host's database connection in the middle of its own transaction. On PostgreSQL: a pg
 * `Client` or `PoolClient` after `BEGIN` (not a Pool: each statement would commit apart).
 */
export interface TransactionClient {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

export interface PublishOptions {
  /** Publish inside this transaction of the host's (transactional outbox); PostgreSQL only. */
  client?: TransactionClient | undefined;
}

/** OAuth storage: everything a token or code is, is kept as a SHA-256 hash. */
export interface OAuthStore {
  getAppByClientId(clientId: string): Promise<App | null>;
  /** Unexpired secrets of `kind` that a rotation replaced (still valid in their grace period). */
  previousSecrets(appId: string, kind: SecretKind, now: number): Promise<string[]>;
  /** Every user with this email (one per company), with the password hash. */
  signInCandidates(email: string): Promise<{ user: User; password_hash: string | null }[]>;
  saveAuthCode(code: AuthCode): Promise<void>;
  /** Marks the code used and returns it as it was (its `used_at` tells a replay), or null. */
  useAuthCode(hash: string, now: number): Promise<AuthCode | null>;
  /**
   * Issues tokens for an authorization: reuses the live grant of the same app, user and
   * company (updating its scope) or creates `grant`, records which grant the code made, and
   * stores both tokens. Returns the grant id.
   */
  authorize(grant: Grant, codeHash: string, access: NewAccessToken, refresh: NewRefreshToken): Promise<string>;
  /** A refresh token with its grant, used or not; null when unknown. */
  findRefreshToken(hash: string): Promise<{ token: RefreshTokenRow; grant: Grant } | null>;
  /** Rotates: marks the old one used and stores the new tokens, in one transaction; false if it was already used. */
  rotateRefreshToken(oldHash: string, now: number, access: NewAccessToken, refresh: NewRefreshToken): Promise<boolean>;
  deleteAccessToken(hash: string): Promise<boolean>;
  /** Live grants of these users with their apps, newest first. */
  listUserGrants(userIds: string[]): Promise<{ grant: Grant; app: App }[]>;
  /**
   * Counts one sign-in attempt under `keyHash`, in one statement (concurrent attempts each get
   * their own count, from any process): in the window that holds `now`, or in a new one of
   * `windowMs` when the last has ended. Returns the attempts of the window, this one included,
   * and when it ends. Windows that have ended are removed.
   */
  countSignInAttempt(keyHash: string, now: number, windowMs: number): Promise<{ attempts: number; reset_at: number }>;
  /** Forgets the attempts under `keyHash` (its sign-in succeeded). */
  clearSignInAttempts(keyHash: string): Promise<void>;
}

export interface AuthCode {
  hash: string;
  app_id: string;
  user_id: string;
  company_id: string;
  scope: string;
  redirect_uri: string;
  code_challenge: string | null;
  code_challenge_method: string | null;
  expires_at: number;
  created_at: number;
  used_at: number | null;
  grant_id: string | null;
}

export interface NewRefreshToken {
  hash: string;
  grant_id: string;
  expires_at: number;
  created_at: number;
}

export interface RefreshTokenRow extends NewRefreshToken {
  used_at: number | null;
}

export interface StoreCapabilities {
  supportsSkipLocked: boolean;
  supportsListenNotify: boolean;
}

export interface Company {
  id: string;
  name: string;
  sub_domain: string;
  created_at: number;
}

export interface Role {
  company_id: string;
  name: string;
  permissions: Permissions;
}

export interface User {
  id: string;
  company_id: string;
  email: string;
  name: string;
  role: string;
  created_at: number;
  updated_at: number;
}

export type SignatureFormat = 'signed_request' | 'standard_webhooks';
export type SecretKind = 'client' | 'signing';

export interface App {
  id: string;
  name: string;
  url: string;
  redirect_uris: string[];
  signature: SignatureFormat;
  client_id: string;
  /** Keys signed_request HMACs and OAuth client authentication. */
  client_secret: string;
  /** `whsec_…`, keys Standard Webhooks signatures. */
  signing_secret: string;
  /** A public OAuth client (SPA, native): no client secret at the token endpoint, PKCE S256 required. */
  public_client: boolean;
  created_at: number;
}

export interface Grant {
  id: string;
  app_id: string;
  user_id: string;
  company_id: string;
  scope: string;
  created_at: number;
  revoked_at: number | null;
}

export interface NewAccessToken {
  /** SHA-256 hex of the token: the token itself is never stored. */
  hash: string;
  grant_id: string;
  expires_at: number;
  created_at: number;
}

export interface TokenContext {
  grant: Grant;
  app: App;
  user: User;
  expires_at: number;
}

/** The owner of a subscription: an app acting for one user in one company. */
export interface Owner {
  app_id: string;
  user_id: string;
  company_id: string;
}

export interface Subscription extends Owner {
  id: string;
  grant_id: string;
  channels: string[];
  callback_url: string;
  resource: ResourceRef | null;
  headers: Record<string, string>;
  /** signed_request apps: `form` (the default, `signed_request=…`) or `json` (signed JSON body). */
  content_type: BodyFormat;
  created_at: number;
  updated_at: number;
}

export type BodyFormat = 'form' | 'json';

export interface NewEvent extends EventFacts {
  id: string;
  company_id: string;
  links: unknown[];
  user_id: string | null;
  idempotency_key: string | null;
}

export interface StoredEvent extends NewEvent {
  created_at: number;
}

export interface PublishResult {
  id: string;
  duplicate: boolean;
  /** Deliveries queued by the publish itself: at most FAN_OUT_CHUNK, the rest follow (Store.expandFanOut). */
  deliveries: number;
}

export interface FanOutProgress {
  event_id: string;
  /** Deliveries this chunk queued. */
  deliveries: number;
  /** The event's fan-out is complete. */
  done: boolean;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed' | 'dropped';

export interface Delivery {
  id: string;
  event_id: string;
  subscription_id: string;
  company_id: string;
  app_id: string;
  channel: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface Attempt {
  delivery_id: string;
  attempt: number;
  started_at: number;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
}

/** A claimed delivery with everything the dispatcher needs, fetched in the claim itself. */
export interface ClaimedDelivery {
  id: string;
  lease: string;
  attempts: number;
  event: StoredEvent;
  /** null when the subscription was deleted after the delivery was queued. */
  subscription: Subscription | null;
  app: App | null;
  /** Unexpired secrets replaced by a rotation, of the kind that signs this app's format. */
  previousSecrets: string[];
  grant: Grant | null;
  company: Company | null;
  user: User | null;
  role: Role | null;
}

/**
 * How many more deliveries a dispatcher can send to each receiver origin, so that a claim never
 * takes what it could not send at once (one slow origin cannot fill every slot).
 */
export interface ClaimRoom {
  /** Most in flight to one origin. */
  perOrigin: number;
  /** In flight now, by `originKey` of the callback URL; origins not listed have none. */
  inFlight: ReadonlyMap<string, number>;
}

/**
 * A callback URL's scheme and authority with the slash after it (`https://a.example:8443/`),
 * computed the same way in SQL (`originSql` in rows.ts), so claims can count by origin.
 * Callback URLs are stored normalized (`URL.href`), which always has that slash.
 */
export function originKey(callbackUrl: string): string {
  return callbackUrl.slice(0, callbackUrl.indexOf('/', 8) + 1);
}

export type DeliveryOutcome =
  | { kind: 'succeeded'; id: string; lease: string; attempt: Attempt }
  | { kind: 'retry'; id: string; lease: string; attempt: Attempt; next_attempt_at: number }
  | { kind: 'failed'; id: string; lease: string; attempt: Attempt }
  /** 410 Gone: the delivery ends failed and the subscription is removed. */
  | { kind: 'gone'; id: string; lease: string; attempt: Attempt; subscription_id: string }
  | { kind: 'dropped'; id: string; lease: string; reason: string; at: number };

export interface DeliveryFilter {
  company_id?: string | undefined;
  subscription_id?: string | undefined;
  event_id?: string | undefined;
  status?: DeliveryStatus | undefined;
  limit: number;
}
