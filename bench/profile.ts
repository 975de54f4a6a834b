import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled time in ms, idle included. */
  totalMs: number;
  idlePct: number;
  /** Self time by where it runs: a package, a folder of Herald's src/, node internals, GC. */
  byArea: { area: string; pct: number }[];
  /** Herald's own functions by inclusive time (their callees counted in). */
  heraldInclusive: { fn: string; pct: number }[];
  /** The busiest functions by self time. */
  topSelf: { fn: string; pct: number }[];
}

const SPECIAL: Record<string, string> = { '(idle)': 'idle', '(garbage collector)': 'GC', '(program)': 'V8/native (program)' };

function areaOf(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  const src = /\/src\/(?:([^/]+)\/)?/.exec(url);
  if (src) return `herald src/${src[1] ?? '*.ts'}`;
  if (url.startsWith('node:')) return 'node internals';
  return url ? 'other' : 'native';
}

function label(n: ProfileNode): string {
  const { functionName, url } = n.callFrame;
  const file = url.replace(/^.*\/(node_modules|src)\//, '$1/');
  return `${functionName || '(anonymous)'}${url ? ` ${file}` : ''}`;
}

/** Reads a V8 .cpuprofile (from node --cpu-prof) and says where the time went. */
export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;

  const area = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const special = SPECIAL[node.callFrame.functionName];
    if (special === 'idle') idle += us;
    // Native frames (no url) count towards the nearest caller with one: a better-sqlite3
    // statement's C++ is better-sqlite3's time, an HMAC's is whoever signed.
    let owner: ProfileNode | undefined = node;
    while (owner && !owner.callFrame.url && parent.has(owner.id)) owner = byId.get(parent.get(owner.id)!);
    const where = special ?? areaOf(owner?.callFrame.url ?? '');
    area.set(where, (area.get(where) ?? 0) + us);
    selfByFn.set(label(node), (selfByFn.get(label(node)) ?? 0) + us);
    const seen = new Set<string>();
    for (let n: ProfileNode | undefined = node; n; n = parent.has(n.id) ? byId.get(parent.get(n.id)!) : undefined) {
      if (!/\/src\//.test(n.callFrame.url) || /node_modules/.test(n.callFrame.url)) continue;
      const key = label(n);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const pct = (us: number) => Math.round((us / total) * 1000) / 10;
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    file,
    totalMs: Math.round(total / 1000),
    idlePct: pct(idle),
    byArea: sorted(area).map(([a, us]) => ({ area: a, pct: pct(us) })).filter((x) => x.pct >= 0.5),
    heraldInclusive: sorted(inclusive).slice(0, top).map(([fn, us]) => ({ fn, pct: pct(us) })),
    topSelf: sorted(selfByFn).filter(([fn]) => fn !== '(idle)').slice(0, top).map(([fn, us]) => ({ fn, pct: pct(us) })),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`profile ${s.file}: ${s.totalMs} ms sampled, ${s.idlePct}% idle`];
  lines.push('  self time by area: ' + s.byArea.map((a) => `${a.area} ${a.pct}%`).join(', '));
  lines.push('  Herald functions, inclusive:');
  for (const f of s.heraldInclusive) lines.push(`    ${String(f.pct).padStart(5)}%  ${f.fn}`);
  lines.push('  top self time:');
  for (const f of s.topSelf) lines.push(`    ${String(f.pct).padStart(5)}%  ${f.fn}`);
  return lines.join('\n');
}

/**
 * The profile of Herald's main thread among those `--cpu-prof` wrote into `dir` (under tsx,
 * the module loader's thread writes its own): the one that ran src/cli.ts, else the largest.
 */
export function mainThreadProfile(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
  const main = files.find((f) => /\/src\/cli\.(ts|js)"/.test(readFileSync(f, 'utf8')));
  return main ?? files.sort((a, b) => statSync(b).size - statSync(a).size)[0] ?? null;
}
