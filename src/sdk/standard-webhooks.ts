import { createHmac, timingSafeEqual } from 'node:crypto';
import { SignatureError } from '../domain/signature.js';
import { WHSEC_PREFIX } from '../domain/standard-webhooks.js';

/**
 * Receiving side of Standard Webhooks v1 (standardwebhooks.com): checks `webhook-id`,
 * `webhook-timestamp` and `webhook-signature` against the raw body, then parses it.
 */

/** Node's `IncomingHttpHeaders` (any case, arrays for repeated headers) or a WHATWG `Headers`. */
export type HeaderSource =
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface StandardWebhookOptions {
  /**
   * Largest distance, in seconds, between `webhook-timestamp` and now, both ways: older is a
   * replay, newer is a clock too far ahead. Default 300, as in the reference libraries.
   */
  toleranceSeconds?: number;
  /** For tests: the current time in milliseconds. Default `Date.now()`. */
  now?: number;
}

export const DEFAULT_TOLERANCE_SECONDS = 300;

function headerValues(headers: HeaderSource, name: string): string[] {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const value = (headers as { get(name: string): string | null }).get(name);
    return value === null ? [] : [value];
  }
  const values: string[] = [];
  for (const [key, value] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    values.push(...(typeof value === 'string' ? [value] : value));
  }
  return values;
}

/** The single value of a header; a missing, empty or contradictory one is a format error. */
function single(headers: HeaderSource, name: string): string {
  const values = [...new Set(headerValues(headers, name).map((v) => v.trim()))];
  if (values.length !== 1 || values[0] === '') {
    throw new SignatureError('format', values.length > 1 ? `several different ${name} headers` : `missing ${name} header`);
  }
  return values[0]!;
}

/**
 * The HMAC key of a `whsec_<base64>` secret (the prefix is optional). A secret that decodes to
 * no bytes would make every signature forgeable, so it is refused as a configuration error.
 */
function keyOf(secret: string): Buffer {
  const key = Buffer.from(secret.startsWith(WHSEC_PREFIX) ? secret.slice(WHSEC_PREFIX.length) : secret, 'base64');
  if (key.length === 0) throw new TypeError('a Standard Webhooks secret must be "whsec_" followed by base64 key bytes');
  return key;
}

/**
 * The `v1` signatures of the header, decoded. Tokens are space-separated; Node joins repeated
 * headers with ", ", so a trailing comma is dropped (base64 never contains one). Other
 * versions (`v1a`, asymmetric) are skipped, as the specification says.
 */
function v1Signatures(values: string[]): Buffer[] {
  return values
    .flatMap((v) => v.split(/\s+/))
    .map((token) => token.replace(/,+$/, ''))
    .filter((token) => token.startsWith('v1,'))
    .map((token) => Buffer.from(token.slice(3), 'base64'));
}

/**
 * Verifies a Standard Webhooks delivery and returns its parsed JSON body, or throws a
 * SignatureError: `format` (missing or malformed headers), `expired` (timestamp outside the
 * tolerance), `signature` (no `v1` signature matches any secret, compared in constant time),
 * `payload` (the body is not a JSON object). Pass several secrets while rotating.
 * `body` must be the raw bytes as received: re-serialised JSON will not match.
 */
export function verifyStandardWebhook(
  body: string | Buffer,
  headers: HeaderSource,
  secret: string | readonly string[],
  options: StandardWebhookOptions = {},
): Record<string, unknown> {
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (secrets.length === 0) throw new TypeError('verifyStandardWebhook needs at least one secret');
  const keys = secrets.map(keyOf);

  const id = single(headers, 'webhook-id');
  const rawTimestamp = single(headers, 'webhook-timestamp');
  if (!/^\d{1,15}$/.test(rawTimestamp)) throw new SignatureError('format', 'webhook-timestamp must be whole unix seconds');
  const signatureHeaders = headerValues(headers, 'webhook-signature');
  if (signatureHeaders.every((v) => v.trim() === '')) throw new SignatureError('format', 'missing webhook-signature header');
  const signatures = v1Signatures(signatureHeaders);

  const timestamp = Number(rawTimestamp);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const skew = Math.floor((options.now ?? Date.now()) / 1000) - timestamp;
  if (skew > tolerance) throw new SignatureError('expired', `webhook-timestamp is ${skew}s old, more than ${tolerance}s`);
  if (-skew > tolerance) throw new SignatureError('expired', `webhook-timestamp is ${-skew}s in the future, more than ${tolerance}s`);

  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const matches = keys.some((key) => {
    const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(raw).digest();
    return signatures.some((given) => given.length === expected.length && timingSafeEqual(given, expected));
  });
  if (!matches) throw new SignatureError('signature', 'no v1 signature in webhook-signature matches');

  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new SignatureError('payload', 'body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SignatureError('payload', 'body is not a JSON object');
  }
  return parsed as Record<string, unknown>;
}
