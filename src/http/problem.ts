import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CATALOGUE, HeraldError, type ErrorCode } from '../domain/errors.js';

/**
 * The single boundary where errors become `application/problem+json` (RFC 9457):
 * `{type, title, status, detail, code}`. Client mistakes keep their 4xx; anything else is a
 * 500 with no internals in the body (the log has them).
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

export function problemOf(code: ErrorCode, detail: string): Problem {
  const { status, title } = ERROR_CATALOGUE[code];
  return { type: `https://herald.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`, title, status, detail, code };
}

/** Fastify's own client errors, by code, onto the catalogue. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MALFORMED_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_REQUEST',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
};

export function toProblem(err: FastifyError | HeraldError | Error): Problem {
  if (err instanceof HeraldError) return problemOf(err.code, err.message);
  const fe = err as FastifyError;
  if (fe.validation) return problemOf('VALIDATION_FAILED', fe.message);
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return problemOf(mapped, fe.message);
  if (err instanceof SyntaxError || (fe.statusCode === 400)) return problemOf('MALFORMED_REQUEST', fe.message || 'malformed request');
  if (fe.statusCode === 413) return problemOf('PAYLOAD_TOO_LARGE', fe.message);
  if (fe.statusCode === 415) return problemOf('UNSUPPORTED_MEDIA_TYPE', fe.message);
  // The store is momentarily locked or away: the client may retry; it did nothing wrong.
  if (storeUnavailable(fe)) {
    return problemOf('SERVICE_UNAVAILABLE', 'the store is busy or unreachable; retry shortly');
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { type: 'about:blank', title: 'Client error', status: fe.statusCode, detail: fe.message, code: fe.code ?? 'CLIENT_ERROR' };
  }
  return { type: 'about:blank', title: 'Internal error', status: 500, detail: 'the server failed; it has been logged', code: 'INTERNAL' };
}

/**
 * SQLite busy, or PostgreSQL away: refused or reset connections, SQLSTATE class 08
 * (connection exception), 57P01-57P03 (shutting down, crashed, starting up), and the errors
 * node-postgres raises without a code for a connection lost mid-query or not obtained in time.
 */
const UNAVAILABLE_CODES = new Set(['SQLITE_BUSY', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03']);

function storeUnavailable(err: Error & { code?: unknown }): boolean {
  if (typeof err.code === 'string' && (UNAVAILABLE_CODES.has(err.code) || /^08[0-9A-Z]{3}$/.test(err.code))) return true;
  return /^(Connection terminated|timeout exceeded when trying to connect)|is not queryable/.test(err.message);
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

export function errorHandler(this: unknown, err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const problem = toProblem(err);
  if (problem.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code: problem.code, status: problem.status }, problem.detail);
  return sendProblem(reply, problem);
}
