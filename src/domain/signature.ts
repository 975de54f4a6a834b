import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The `signed_request` format (SalesKing / Facebook canvas style):
 * `<hex HMAC-SHA256 of payload>.<payload>`, payload = base64url (no padding) of the JSON.
 * Keyed with the app's client_secret. Reproduces ../shared/vectors/signatures.json.
 */
export const SIGNED_REQUEST_ALGORITHM = 'HMAC-SHA256';

export function hmacHex(payload: string | Uint8Array, secret: string): string {
  return createHmac('sha256', secret).update(payload).digest('hex');
}

/** Signs an already-serialised JSON text (the dispatcher serialises once per delivery). */
export function signJson(json: string, secret: string): string {
  const payload = Buffer.from(json, 'utf8').toString('base64url');
  return `${hmacHex(payload, secret)}.${payload}`;
}

/** `sha256=<hex>` over a raw body: the signature of signed JSON deliveries (GitHub's shape). */
export function signBody(body: string | Uint8Array, secret: string): string {
  return `sha256=${hmacHex(body, secret)}`;
}

/**
 * Verifies a signed JSON delivery: `x-herald-signature` holds one or more comma-separated
 * `sha256=<hex>` HMACs of the raw body (several during a secret rotation). Returns the parsed
 * body or throws a SignatureError.
 */
export function verifySignedJson(
  body: string | Buffer,
  header: string | undefined,
  secret: string | readonly string[],
  options: Pick<VerifyOptions, 'maxAgeSeconds' | 'now'> = {},
): Record<string, unknown> {
  if (!header) throw new SignatureError('format', 'x-herald-signature header is missing');
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const given = header.split(',').map((p) => p.trim()).filter((p) => /^sha256=[0-9a-f]{64}$/.test(p)).map((p) => Buffer.from(p.slice(7), 'hex'));
  if (given.length === 0) throw new SignatureError('format', 'x-herald-signature must be sha256=<64 hex chars>');
  const secrets = typeof secret === 'string' ? [secret] : secret;
  const expected = secrets.map((s) => createHmac('sha256', s).update(raw).digest());
  if (!given.some((g) => expected.some((e) => timingSafeEqual(g, e)))) throw new SignatureError('signature', 'signature does not match');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new SignatureError('payload', 'body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SignatureError('payload', 'body is not a JSON object');
  const obj = parsed as Record<string, unknown>;
  checkAge(obj, options);
  return obj;
}

/** The string the server sends as `signed_request` for this object. */
export function signRequest(object: unknown, secret: string): string {
  return signJson(JSON.stringify(object), secret);
}

export class SignatureError extends Error {
  constructor(
    readonly reason: 'format' | 'signature' | 'algorithm' | 'expired' | 'payload',
    message: string,
  ) {
    super(message);
    this.name = 'SignatureError';
  }
}

export interface VerifyOptions {
  /** Reject a payload whose `issued_at` is older than this many seconds. Default: no limit. */
  maxAgeSeconds?: number;
  /** For tests: the current time in milliseconds. Default `Date.now()`. */
  now?: number;
  /**
   * The `x-herald-previous-signatures` header: during a secret rotation's grace period, the
   * signatures by the replaced secrets, so a receiver that still holds the old secret verifies.
   */
  previousSignatures?: string | undefined;
}

/**
 * Verifies a `signed_request` and returns the decoded object, or throws a SignatureError
 * saying why: bad format, bad signature (compared in constant time), wrong algorithm, too old.
 */
export function verifySignedRequest(
  signedRequest: string,
  secret: string | readonly string[],
  options: VerifyOptions = {},
): Record<string, unknown> {
  if (typeof signedRequest !== 'string') throw new SignatureError('format', 'signed_request must be a string');
  const dot = signedRequest.indexOf('.');
  const sig = signedRequest.slice(0, dot);
  const payload = signedRequest.slice(dot + 1);
  if (dot < 0 || !/^[0-9a-f]{64}$/.test(sig) || !/^[A-Za-z0-9_-]+$/.test(payload)) {
    throw new SignatureError('format', 'signed_request must be "<64 hex chars>.<base64url payload>"');
  }
  const candidates = [sig, ...(options.previousSignatures ?? '').split(',').map((x) => x.trim()).filter((x) => /^[0-9a-f]{64}$/.test(x))];
  const secrets = typeof secret === 'string' ? [secret] : secret;
  const expected = secrets.map((s) => Buffer.from(hmacHex(payload, s), 'hex'));
  const valid = candidates.some((c) => {
    const given = Buffer.from(c, 'hex');
    return expected.some((e) => timingSafeEqual(given, e));
  });
  if (!valid) throw new SignatureError('signature', 'signature does not match');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw new SignatureError('payload', 'payload is not base64url-encoded JSON');
  }
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) {
    throw new SignatureError('payload', 'payload is not a JSON object');
  }
  const obj = decoded as Record<string, unknown>;
  if (obj.algorithm !== undefined && obj.algorithm !== SIGNED_REQUEST_ALGORITHM) {
    throw new SignatureError('algorithm', `algorithm "${String(obj.algorithm)}" is not ${SIGNED_REQUEST_ALGORITHM}`);
  }
  checkAge(obj, options);
  return obj;
}

/** With `maxAgeSeconds`: refuse a notification whose `issued_at` is older (replay protection). */
function checkAge(obj: Record<string, unknown>, options: Pick<VerifyOptions, 'maxAgeSeconds' | 'now'>): void {
  if (options.maxAgeSeconds === undefined) return;
  const issued = typeof obj.issued_at === 'string' ? Date.parse(obj.issued_at) : NaN;
  if (Number.isNaN(issued)) throw new SignatureError('expired', 'payload has no valid issued_at to check its age');
  const age = ((options.now ?? Date.now()) - issued) / 1000;
  if (age > options.maxAgeSeconds) throw new SignatureError('expired', `payload is ${Math.round(age)}s old, more than ${options.maxAgeSeconds}s`);
}
