import { HeraldError } from './errors.js';
import { ipLiteral, isPrivateAddress } from './network.js';

export const MAX_URL_LENGTH = 2048;

function parseHttpUrl(raw: string, code: 'CALLBACK_URL_INVALID' | 'URL_INVALID', what: string): URL {
  if (raw.length > MAX_URL_LENGTH) throw new HeraldError(code, `${what} is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HeraldError(code, `${what} "${raw}" is not an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new HeraldError(code, `${what} "${raw}" must use http or https`);
  }
  if (url.username || url.password) throw new HeraldError(code, `${what} must not carry credentials`);
  if (url.hash || raw.includes('#')) throw new HeraldError(code, `${what} "${raw}" must not have a fragment`);
  return url;
}

function checkReachability(url: URL, raw: string, allowPrivate: boolean, what: string): void {
  if (allowPrivate) return;
  if (url.protocol !== 'https:') throw new HeraldError('CALLBACK_NOT_HTTPS', `${what} "${raw}" must use https`);
  const ip = ipLiteral(url.hostname);
  const host = url.hostname.toLowerCase().replace(/\.$/, '');
  if ((ip && isPrivateAddress(ip)) || host === 'localhost' || host.endsWith('.localhost')) {
    throw new HeraldError('CALLBACK_PRIVATE_ADDRESS', `${what} "${raw}" points to a private or loopback address`);
  }
}

/** Validates an app's base URL; returns its canonical form. */
export function validateAppUrl(raw: string, allowPrivate: boolean): string {
  const url = parseHttpUrl(raw, 'URL_INVALID', 'app url');
  if (url.search) throw new HeraldError('URL_INVALID', `app url "${raw}" must not have a query`);
  checkReachability(url, raw, allowPrivate, 'app url');
  return url.href;
}

/**
 * A callback URL must lie within the app's URL: same scheme, host and port, and a path at or
 * under the app's path (segment-wise: `/hooks` does not contain `/hooksmith`). Query
 * parameters are kept (receivers use them for authentication). https only, and no private IP
 * literal, unless private callbacks are allowed (development and tests).
 */
export function validateCallbackUrl(raw: string, appUrl: string, allowPrivate: boolean): string {
  const url = parseHttpUrl(raw, 'CALLBACK_URL_INVALID', 'callback_url');
  checkReachability(url, raw, allowPrivate, 'callback_url');
  const app = new URL(appUrl);
  const base = app.pathname.endsWith('/') ? app.pathname : `${app.pathname}/`;
  const inside =
    url.protocol === app.protocol &&
    url.hostname === app.hostname &&
    url.port === app.port &&
    (url.pathname === app.pathname || url.pathname.startsWith(base));
  if (!inside) {
    throw new HeraldError('CALLBACK_OUTSIDE_APP_URL', `callback_url "${raw}" is not within the app url "${appUrl}"`);
  }
  return url.href;
}
