import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';

const cpuCount = () => cpus().length;

/**
 * Forks `entry` under tsx with `options` as JSON in argv[2], and waits for its first message
 * of type 'listening' (a helper process of the bench: the receiver, the latency floor).
 * Rejects if it exits first.
 */
export async function forkListening<L>(entry: string, options: unknown, what: string): Promise<{ child: ChildProcess; listening: L }> {
  const child = fork(entry, [JSON.stringify(options)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const listening = await new Promise<L>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
    child.on('message', (m: { type?: string }) => m.type === 'listening' && resolve(m as L));
  });
  child.removeAllListeners('exit');
  return { child, listening };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return out;
}

/** Nearest-rank percentile of unsorted samples (0 when empty). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

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

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system, all threads) a process has used so far, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}

/** Resident set size in MiB, as `ps -o rss=` reports it. */
export function rssMiB(pid: number): number {
  try {
    return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024;
  } catch {
    return NaN;
  }
}

/** CPU used by a process between start() and the returned function's call, as % of one core. */
export function cpuMeter(pid: number): () => { cpuS: number; cpuPct: number } {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  return () => {
    const cpuS = cpuSeconds(pid) - c0;
    return { cpuS: round(cpuS, 2), cpuPct: Math.round((cpuS / ((performance.now() - t0) / 1000)) * 100) };
  };
}

export const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits;

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000}s (BENCH_TIMEOUT)`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function procStat(): number[] {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  } catch {
    return [];
  }
}

export interface MachineLoad {
  /** Of all CPUs together: busy (user+system+irq), waiting for I/O, stolen by the hypervisor. */
  busyPct: number;
  iowaitPct: number;
  stealPct: number;
  /**
   * CPU that none of the scenario's own processes used (neighbours on a shared machine), in %
   * of one core: a run where this is high was measured on a busy machine.
   */
  othersPct: number;
}

/**
 * The whole machine's CPU between start and the returned function's call (Linux /proc/stat),
 * and how much of it went to processes other than `pids` and those `also` measures.
 */
export function machineMeter(pids: number[], also: (() => { cpuPct: number })[] = []): () => MachineLoad {
  const a = procStat();
  const ours = [...pids.map((pid) => cpuMeter(pid)), ...also];
  const cpus = cpuCount();
  return () => {
    const b = procStat();
    const d = b.map((v, i) => v - (a[i] ?? 0));
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = d;
    const total = user + nice + system + idle + iowait + irq + softirq + steal || 1;
    const pct = (n: number) => Math.round((n / total) * 100);
    const ourPct = ours.reduce((sum, m) => sum + m().cpuPct, 0);
    const busyPct = pct(user + nice + system + irq + softirq);
    return { busyPct, iowaitPct: pct(iowait), stealPct: pct(steal), othersPct: Math.max(0, busyPct * cpus - ourPct) };
  };
}

function pidsNamed(comm: string, cmdlineIncludes: string): number[] {
  try {
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(cmdlineIncludes);
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * CPU of the processes named `comm` whose command line includes `cmdlineIncludes`, % of one
 * core: PostgreSQL's backends show their database name there, so only ours are counted.
 */
export function commandCpuMeter(comm: string, cmdlineIncludes = ''): () => { cpuPct: number } {
  const before = new Map(pidsNamed(comm, cmdlineIncludes).map((pid) => [pid, cpuSeconds(pid)]));
  const t0 = performance.now();
  return () => {
    let used = 0;
    for (const pid of pidsNamed(comm, cmdlineIncludes)) {
      const now = cpuSeconds(pid);
      if (Number.isFinite(now)) used += now - (before.get(pid) ?? 0);
    }
    return { cpuPct: Math.round((used / ((performance.now() - t0) / 1000)) * 100) };
  };
}

/** The kernel's range of ports for outgoing connections (Linux), or the usual default. */
function ephemeralPorts(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    /* not Linux */
  }
  return [32768, 60999];
}

/**
 * A port free now that nobody will listen on until the caller does: connections to it are
 * refused meanwhile. Chosen below the ephemeral range, so no outgoing connection (Herald's to
 * PostgreSQL, say) takes it as its local port while it is waiting to be listened on.
 */
export async function reservePort(): Promise<number> {
  const [low] = ephemeralPorts();
  const top = Math.min(low, 32768);
  const bottom = Math.max(1024, top - 12_000);
  for (let tries = 0; tries < 100; tries++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom));
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port found between ${bottom} and ${top}`);
}

/**
 * Samples a process's resident memory every `intervalMs` until stop(). `mark(phase)` starts a
 * new phase, so the maximum of each phase (publishing, draining...) is kept apart.
 */
export function rssSampler(pid: number, intervalMs = 1000) {
  const maxByPhase = new Map<string, number>();
  let phase = 'start';
  const sample = () => {
    const mib = rssMiB(pid);
    if (Number.isFinite(mib)) maxByPhase.set(phase, Math.max(maxByPhase.get(phase) ?? 0, mib));
  };
  sample();
  let timer: NodeJS.Timeout | null = setInterval(sample, intervalMs);
  return {
    /** Samples at the boundary, in both phases. */
    mark(next: string) {
      sample();
      phase = next;
      sample();
    },
    /** Stops sampling (idempotent); the maximum over everything and per phase, in MiB. */
    stop(): { maxMiB: number; byPhase: Record<string, number> } {
      if (timer) {
        sample();
        clearInterval(timer);
        timer = null;
      }
      const byPhase = Object.fromEntries([...maxByPhase].map(([name, mib]) => [name, round(mib, 1)]));
      return { maxMiB: round(Math.max(0, ...maxByPhase.values()), 1), byPhase };
    },
  };
}
