import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { testEnv } from './server.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface HeraldProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  /** Extra arguments after `serve`, e.g. `--worker-only`. */
  args?: string[];
  /** Wait for /healthz before resolving. Default true; false for `--worker-only`, which serves no HTTP. */
  waitForHealth?: boolean;
}

/** Runs `herald serve` as a real child process (so it can be SIGKILLed) and waits for /healthz. */
export async function spawnHerald(dir: string, port: number, extra: Record<string, string> = {}, opts: SpawnOptions = {}): Promise<HeraldProcess> {
  const env = { ...process.env, ...testEnv(dir, { PORT: String(port), LOG_LEVEL: 'warn', ...extra }) };
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', ...(opts.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  if (opts.waitForHealth === false) return { child, url, output: () => out, exited };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`herald exited early: ${out}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL'); // never leave a half-started child behind
      throw new Error(`herald did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, output: () => out, exited };
}
