import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent, request } from 'undici';
import { isPrivateAddress } from '../domain/network.js';
import type { DeliveryConfig } from '../config.js';

export interface SendResult {
  /** null when no answer came (connection error, timeout, refused address). */
  statusCode: number | null;
  retryAfter: string | undefined;
  excerpt: string | null;
  error: string | null;
  durationMs: number;
}

/** What delivers a signed request: a Sender in this thread, or ThreadedSender (send-thread.ts). */
export interface Transport {
  send(url: string, headers: Record<string, string>, body: string): Promise<SendResult>;
  close(): Promise<void>;
}

export const USER_AGENT = 'Herald-Webhooks/0.1 (+https://github.com/herald)';

/**
 * POSTs deliveries with undici: one keep-alive pool per receiver origin, connect and total
 * timeouts, no redirects followed (a 3xx is a failed attempt, as with Stripe and GitHub),
 * and a DNS lookup that refuses private addresses at connect time unless private callbacks
 * are allowed, so a public name that resolves to 169.254.169.254 is never reached.
 */
export class Sender implements Transport {
  private readonly agent: Agent;

  constructor(private readonly cfg: DeliveryConfig, allowPrivate: boolean) {
    this.agent = new Agent({
      connections: cfg.connectionsPerOrigin,
      keepAliveTimeout: 10_000,
      headersTimeout: cfg.timeoutMs,
      bodyTimeout: cfg.timeoutMs,
      ...(cfg.egressAddress === null ? {} : { localAddress: cfg.egressAddress }),
      connect: { timeout: cfg.connectTimeoutMs, ...(allowPrivate ? {} : { lookup: publicOnlyLookup }) },
    });
  }

  async send(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'user-agent': USER_AGENT, ...headers },
        body,
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.cfg.timeoutMs),
      });
      const excerpt = await readExcerpt(res.body, this.cfg.responseExcerptBytes);
      const retryAfter = res.headers['retry-after'];
      return {
        statusCode: res.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        excerpt,
        error: res.statusCode >= 200 && res.statusCode < 300 ? null : `receiver answered ${res.statusCode}`,
        durationMs: elapsed(),
      };
    } catch (err) {
      return { statusCode: null, retryAfter: undefined, excerpt: null, error: describe(err), durationMs: elapsed() };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

async function readExcerpt(body: AsyncIterable<Buffer> & { destroy(): void }, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= limit) break; // leaving the loop destroys the rest of the body
  }
  if (size === 0) return null;
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: string }).code ?? (err.cause as { code?: string } | undefined)?.code;
  if (err.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout: no complete answer in time';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect timeout';
  return code ? `${code}: ${err.message}` : err.message;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup that fails when any resolved address is private (no partial trust of a name). */
export function publicOnlyLookup(hostname: string, options: object, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad) {
      const refusal = Object.assign(new Error(`${hostname} resolves to private address ${bad.address}`), { code: 'EPRIVATEADDRESS' });
      return callback(refusal, []);
    }
    if ((options as { all?: boolean }).all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
    callback(null, first.address, first.family);
  });
}
