import pino, { type Logger } from 'pino';

/** Strips `access_token` from a URL before it reaches a log line. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]access_token=)[^&]*/gi, '$1[redacted]');
}

/**
 * The process logger. Secrets never reach it: the Authorization header is not serialised
 * and query tokens are redacted; callback URLs are never logged (their query may hold keys).
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    serializers: {
      req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, url: redactUrl(req.url), ip: req.ip }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      err: pino.stdSerializers.err,
    },
  });
}
