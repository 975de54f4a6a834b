import type { FanoutResult, HeraldResult, IdleResult } from './herald.js';
import type { ThroughputResult } from './limit.js';

export interface Report {
  date: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; memoryGiB: number };
  sizes: Record<string, unknown>;
  throughput: (ThroughputResult | HeraldResult)[];
  ratios: { name: string; value: number }[];
  fanout: FanoutResult[];
  idle: IdleResult[];
  notes: string[];
  profiles: unknown[];
}

const fmt = (n: number) => n.toLocaleString('en-US');

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ') + ' |';
  return [line(rows[0]!), '| ' + widths.map((w, c) => (c === 0 ? '-'.repeat(w) : '-'.repeat(w - 1) + ':')).join(' | ') + ' |', ...rows.slice(1).map(line)].join('\n');
}

const isHerald = (r: ThroughputResult): r is HeraldResult => 'publish' in r;

/** The main table as Markdown, ready for the README. */
export function throughputTable(results: (ThroughputResult | HeraldResult)[]): string {
  const rows = [['scenario', 'deliveries', 'seconds', 'deliveries/s', 'publish p50 / p99 ms', 'sender CPU', 'receiver CPU', 'machine busy / iowait', 'others']];
  for (const r of results) {
    rows.push([
      r.scenario,
      fmt(r.deliveries),
      r.seconds.toFixed(1),
      fmt(r.perSecond),
      isHerald(r) ? `${r.publish.p50Ms} / ${r.publish.p99Ms}` : '',
      `${r.cpuPct}%`,
      `${r.receiverCpuPct}%`,
      `${r.machine.busyPct}% / ${r.machine.iowaitPct}%`,
      `${r.machine.othersPct}%`,
    ]);
  }
  return pad(rows);
}

export function ratios(results: (ThroughputResult | HeraldResult)[]): { name: string; value: number }[] {
  const find = (prefix: string) => results.find((r) => r.scenario.startsWith(prefix));
  const limit = find('limit');
  const bullmq = find('BullMQ');
  const out: { name: string; value: number }[] = [];
  for (const h of results.filter(isHerald)) {
    const name = h.engine === 'sqlite' ? 'Herald-SQLite' : 'Herald-PG';
    if (limit) out.push({ name: `${name} / limit`, value: Math.round((h.perSecond / limit.perSecond) * 100) / 100 });
    if (bullmq) out.push({ name: `${name} / BullMQ`, value: Math.round((h.perSecond / bullmq.perSecond) * 100) / 100 });
  }
  if (limit && bullmq) out.push({ name: 'BullMQ / limit', value: Math.round((bullmq.perSecond / limit.perSecond) * 100) / 100 });
  return out;
}

export function fanoutTable(results: FanoutResult[]): string {
  const rows = [['fan-out: 1 event to N subscriptions', 'N', 'publish answer ms', 'all delivered s', 'deliveries/s', 'Herald CPU', 'machine busy / iowait', 'others']];
  for (const f of results) {
    rows.push([`Herald on ${f.engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`, fmt(f.subscriptions), String(f.publishMs), f.allDeliveredSeconds.toFixed(2), fmt(f.perSecond), `${f.cpuPct}%`, `${f.machine.busyPct}% / ${f.machine.iowaitPct}%`, `${f.machine.othersPct}%`]);
  }
  return pad(rows);
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A horizontal bar chart of deliveries/s, hand-written SVG. */
export function svgChart(report: Report): string {
  const limit = report.throughput.find((r) => r.scenario.startsWith('limit'))?.perSecond;
  const bars = report.throughput.map((r) => ({ label: r.scenario, value: r.perSecond }));
  for (const f of report.fanout) bars.push({ label: `fan-out, ${fmt(f.subscriptions)} subs (${f.engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`, value: f.perSecond });
  const vsLimit = (v: number) => (limit && v !== limit ? `  (${(v / limit).toFixed(2)} x limit)` : '');
  const max = Math.max(1, ...bars.map((b) => b.value));
  const left = 290;
  const width = 900;
  const barArea = width - left - 200;
  const rowH = 34;
  const top = 64;
  const height = top + bars.length * rowH + 40;
  const colors = ['#8c8c8c', '#d9822b', '#2b7bd9', '#2bb673', '#7a5cd6', '#c94f7c'];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="20" y="28" font-size="17" font-weight="600">Herald benchmark: deliveries per second (higher is better)</text>`,
    `<text x="20" y="48" fill="#555">${esc(`${report.date.slice(0, 16).replace('T', ' ')} UTC, ${report.machine.cpus} CPUs, Node ${report.machine.node}; ${String(report.sizes.subs)} subs x ${String(report.sizes.events)} events, concurrency ${String(report.sizes.concurrency)}`)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, Math.round((b.value / max) * barArea));
    parts.push(
      `<text x="${left - 10}" y="${y + 19}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${w}" height="22" rx="3" fill="${colors[i % colors.length]}"/>`,
      `<text x="${left + w + 8}" y="${y + 19}">${fmt(b.value)}/s<tspan fill="#777">${vsLimit(b.value)}</tspan></text>`,
    );
  });
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + bars.length * rowH}" stroke="#333"/>`);
  parts.push(`<text x="20" y="${height - 14}" fill="#777" font-size="11">npm run bench; ratios measured side by side in one run; bench/results/latest.json has every number</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
