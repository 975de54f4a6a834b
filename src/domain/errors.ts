/**
 * The one catalogue of errors a client can cause. Each code has its HTTP status and a title;
 * the detail names the offending value. http/problem.ts maps them to problem+json (RFC 9457).
 * Internal failures are plain `Error`s and never reach a client in detail.
 */
export const ERROR_CATALOGUE = {
  MALFORMED_REQUEST: { status: 400, title: 'Malformed request' },
  VALIDATION_FAILED: { status: 400, title: 'Request body or parameters are invalid' },
  UNAUTHENTICATED: { status: 401, title: 'Missing or invalid credentials' },
  TOKEN_EXPIRED: { status: 401, title: 'Access token expired' },
  SCOPE_MISSING: { status: 403, title: 'The token scope does not allow this' },
  ROLE_FORBIDS: { status: 403, title: "The user's role does not allow this" },
  RESOURCE_FORBIDDEN: { status: 403, title: "The host does not let this user see that resource" },
  NOT_FOUND: { status: 404, title: 'Not found' },
  COMPANY_NOT_FOUND: { status: 404, title: 'Company not found' },
  USER_NOT_FOUND: { status: 404, title: 'User not found' },
  APP_NOT_FOUND: { status: 404, title: 'App not found' },
  GRANT_NOT_FOUND: { status: 404, title: 'Grant not found' },
  SUBSCRIPTION_NOT_FOUND: { status: 404, title: 'Subscription not found' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  CONFLICT: { status: 409, title: 'Conflict' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  CHANNEL_UNKNOWN: { status: 422, title: 'Unknown channel' },
  RESOURCE_TYPE_UNKNOWN: { status: 422, title: 'Unknown resource type' },
  ROLE_UNKNOWN: { status: 422, title: 'Unknown role' },
  SCOPE_INVALID: { status: 422, title: 'Invalid scope' },
  CALLBACK_URL_INVALID: { status: 422, title: 'Invalid callback URL' },
  CALLBACK_OUTSIDE_APP_URL: { status: 422, title: 'Callback URL is outside the app URL' },
  CALLBACK_NOT_HTTPS: { status: 422, title: 'Callback URL must use https' },
  CALLBACK_PRIVATE_ADDRESS: { status: 422, title: 'Callback URL points to a private address' },
  URL_INVALID: { status: 422, title: 'Invalid URL' },
  SUB_DOMAIN_TAKEN: { status: 409, title: 'Sub-domain already taken' },
  EMAIL_TAKEN: { status: 409, title: 'Email already used in this company' },
  CONTENT_TYPE_UNSUPPORTED: { status: 422, title: 'This app cannot receive that content type' },
  HEADER_FORBIDDEN: { status: 422, title: 'Header cannot be set on a subscription' },
  SERVICE_UNAVAILABLE: { status: 503, title: 'Service unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** An error the client caused; carries its catalogue code and a detail naming the bad value. */
export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly title: string;

  constructor(code: ErrorCode, detail: string) {
    super(detail);
    this.name = 'HeraldError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.title = ERROR_CATALOGUE[code].title;
  }
}

export const fail = (code: ErrorCode, detail: string): never => {
  throw new HeraldError(code, detail);
};
