import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { SignatureError, verifySignedJson, verifySignedRequest } from '../domain/signature.js';
import { verifyStandardWebhook, type HeaderSource } from './standard-webhooks.js';

/**
 * Receiving middleware: verify the raw body of a Herald delivery, in either format, before
 * anything parses it, then hand the decoded event on. Neither framework is a runtime
 * dependency: Express is typed structurally, Fastify by type-only imports.
 */

/** `signed_json`: a signed_request app's subscription that asked for application/json. */
export type DeliveryFormat = 'signed_request' | 'signed_json' | 'standard_webhooks';

/** What a verified delivery carries: its format and its decoded body. */
export interface HeraldDelivery {
  format: DeliveryFormat;
  /** signed_request: the notification object; Standard Webhooks: `{type, timestamp, data}`. */
  event: Record<string, unknown>;
}

export interface HeraldVerifyOptions {
  /**
   * The app's `client_secret` (signed_request) or `signing_secret` (`whsec_…`, Standard
   * Webhooks). Several are all tried: old and new during a rotation, or both kinds to accept
   * both formats.
   */
  secret: string | readonly string[];
  /** signed_request: refuse an `issued_at` older than this many seconds. Default: no limit. */
  maxAgeSeconds?: number;
  /** Standard Webhooks: largest clock distance of `webhook-timestamp`, both ways. Default 300. */
  toleranceSeconds?: number;
}

function headerValue(headers: HeaderSource, name: string): string | undefined {
  if ('get' in headers && typeof headers.get === 'function') return (headers.get(name) as string | null) ?? undefined;
  const entry = Object.entries(headers as Record<string, unknown>).find(([k]) => k.toLowerCase() === name);
  const v = entry?.[1];
  return Array.isArray(v) ? v.join(',') : typeof v === 'string' ? v : undefined;
}

/**
 * Verifies a raw delivery body, detecting its format: a `webhook-signature` header means
 * Standard Webhooks, `x-herald-signature` a signed JSON body, otherwise the form field
 * `signed_request` is expected. Throws SignatureError.
 */
export function verifyHeraldDelivery(body: Buffer, headers: HeaderSource, options: HeraldVerifyOptions): HeraldDelivery {
  const standard = 'get' in headers && typeof headers.get === 'function'
    ? headers.get('webhook-signature') !== null
    : Object.keys(headers).some((k) => k.toLowerCase() === 'webhook-signature');
  if (standard) {
    const event = verifyStandardWebhook(body, headers, options.secret, { toleranceSeconds: options.toleranceSeconds });
    return { format: 'standard_webhooks', event };
  }
  const jsonSignature = headerValue(headers, 'x-herald-signature');
  if (jsonSignature !== undefined) return { format: 'signed_json', event: verifySignedJson(body, jsonSignature, options.secret, { maxAgeSeconds: options.maxAgeSeconds }) };
  const signedRequest = new URLSearchParams(body.toString('utf8')).get('signed_request');
  if (signedRequest === null) throw new SignatureError('format', 'neither a webhook-signature header nor a signed_request form field');
  const event = verifySignedRequest(signedRequest, options.secret, {
    maxAgeSeconds: options.maxAgeSeconds,
    previousSignatures: headerValue(headers, 'x-herald-previous-signatures'),
  });
  return { format: 'signed_request', event };
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  /** The SignatureError reason, when there is one. */
  reason?: SignatureError['reason'];
}

export function signatureProblem(err: SignatureError): Problem {
  return { type: 'https://herald.dev/problems/signature-invalid', title: 'Invalid webhook signature', status: 401, detail: err.message, code: 'SIGNATURE_INVALID', reason: err.reason };
}

function assertSecrets(secret: unknown): void {
  const all = typeof secret === 'string' ? [secret] : secret;
  if (!Array.isArray(all) || all.length === 0 || !all.every((s) => typeof s === 'string' && s.length > 0)) {
    throw new TypeError('herald middleware: `secret` must be a non-empty string or array of them');
  }
}

// ---- Express ---------------------------------------------------------------------------

export interface HeraldExpressOptions extends HeraldVerifyOptions {
  /** Largest body read from the stream; bigger answers 413. Default 1 MiB, as Fastify's bodyLimit. */
  maxBodyBytes?: number;
}

/** Structurally an Express (4 or 5) request: a Node request that a body parser may have filled. */
export type ExpressLikeRequest = IncomingMessage & { body?: unknown; herald?: HeraldDelivery };

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers['content-length']) > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (fn: () => void) => {
      req.off('data', onData).off('end', onEnd).off('error', reject).off('close', onClose);
      fn();
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (size <= limit) chunks.push(buf);
      else settle(() => (req.pause(), reject(new BodyTooLarge())));
    };
    const onEnd = () => settle(() => resolve(Buffer.concat(chunks)));
    const onClose = () => settle(() => reject(new Error('the request closed before its body was read')));
    req.on('data', onData).on('end', onEnd).on('error', reject).on('close', onClose);
  });
}

/** The raw body: from express.raw()/express.text() if they ran, else read from the stream. */
function rawBodyOf(req: ExpressLikeRequest, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(req.body)) return Promise.resolve(req.body);
  if (typeof req.body === 'string') return Promise.resolve(Buffer.from(req.body, 'utf8'));
  if (req.readableDidRead || req.readableEnded) {
    return Promise.reject(new Error('herald: the body was already parsed; mount heraldExpress before express.json()/urlencoded(), or use express.raw()'));
  }
  return readBody(req, limit);
}

function sendProblem(res: ServerResponse, problem: Problem): void {
  res.statusCode = problem.status;
  res.setHeader('content-type', 'application/problem+json');
  res.end(JSON.stringify(problem));
}

/**
 * Express middleware: verifies the raw body, sets `req.herald = {format, event}` and calls
 * `next()`. A bad signature answers 401 problem+json and stops there; a body already consumed
 * by a JSON or form parser is a configuration error passed to `next(err)`.
 */
export function heraldExpress(options: HeraldExpressOptions) {
  assertSecrets(options.secret);
  const limit = options.maxBodyBytes ?? 1024 * 1024;
  return (req: ExpressLikeRequest, res: ServerResponse, next: (err?: unknown) => void): void => {
    void (async () => {
      let delivery: HeraldDelivery;
      try {
        delivery = verifyHeraldDelivery(await rawBodyOf(req, limit), req.headers, options);
      } catch (err) {
        if (err instanceof SignatureError) return sendProblem(res, signatureProblem(err));
        if (err instanceof BodyTooLarge) {
          return sendProblem(res, { type: 'https://herald.dev/problems/payload-too-large', title: 'Request body too large', status: 413, detail: `the body is larger than ${limit} bytes`, code: 'PAYLOAD_TOO_LARGE' });
        }
        return next(err);
      }
      req.herald = delivery;
      next();
    })();
  };
}

// ---- Fastify ---------------------------------------------------------------------------

export type HeraldFastifyRequest = FastifyRequest & { herald: HeraldDelivery };

export interface HeraldFastifyOptions extends HeraldVerifyOptions {
  /** Where the POST route is registered, relative to the plugin's prefix. */
  path: string;
  /**
   * Called with the decoded event once verified (`request.herald` also holds the format).
   * Whatever it returns is the reply; returning undefined without replying answers 204.
   */
  handler(event: Record<string, unknown>, request: HeraldFastifyRequest, reply: FastifyReply): unknown;
}

/**
 * Fastify plugin: a POST route at `path` in its own encapsulated scope, whose content-type
 * parsers keep every body as a raw Buffer (the signature covers the exact bytes), so the
 * rest of the application keeps its own parsers. Register without fastify-plugin.
 */
export const heraldFastify: FastifyPluginAsync<HeraldFastifyOptions> = async (fastify, options) => {
  assertSecrets(options.secret);
  fastify.removeAllContentTypeParsers();
  for (const type of ['application/json', 'application/x-www-form-urlencoded', '*']) {
    fastify.addContentTypeParser(type, { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  }
  if (!fastify.hasRequestDecorator('herald')) fastify.decorateRequest('herald', null);

  fastify.post(options.path, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    let delivery: HeraldDelivery;
    try {
      delivery = verifyHeraldDelivery(body, request.headers, options);
    } catch (err) {
      if (!(err instanceof SignatureError)) throw err;
      return reply.code(401).type('application/problem+json').send(signatureProblem(err));
    }
    const verified = Object.assign(request, { herald: delivery });
    const result = await options.handler(delivery.event, verified, reply);
    if (result !== undefined) return result;
    if (!reply.sent) reply.code(204).send();
    return reply;
  });
};
