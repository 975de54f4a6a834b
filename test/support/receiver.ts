import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
  /** The sender's IP address as this receiver saw it. */
  remoteAddress: string;
}

export type Responder = (req: Received, n: number) => { status: number; headers?: Record<string, string>; body?: string; delayMs?: number };

/** A real HTTP receiver on loopback that records every request and answers as told. */
export class Receiver {
  readonly received: Received[] = [];
  private responder: Responder = () => ({ status: 200, body: 'ok' });
  private waiters: { n: number; resolve: () => void }[] = [];
  private readonly server = createServer((req, res) => this.handle(req, res));
  url = '';

  static async start(responder?: Responder): Promise<Receiver> {
    const r = new Receiver();
    if (responder) r.responder = responder;
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  respond(responder: Responder): void {
    this.responder = responder;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Received = { path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), remoteAddress: req.socket.remoteAddress ?? '' };
      this.received.push(rec);
      const answer = this.responder(rec, this.received.length);
      const finish = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body ?? '');
      };
      if (answer.delayMs) setTimeout(finish, answer.delayMs);
      else finish();
      for (const w of this.waiters.filter((w) => this.received.length >= w.n)) w.resolve();
      this.waiters = this.waiters.filter((w) => this.received.length < w.n);
    });
  }

  /** Resolves once `n` requests in total have arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.received.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver got ${this.received.length} of ${n} requests in ${timeoutMs}ms`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The signed_request of a form-encoded delivery body. */
export function signedRequestOf(body: string): string {
  const value = new URLSearchParams(body).get('signed_request');
  if (!value) throw new Error(`no signed_request in ${body.slice(0, 100)}`);
  return value;
}
