import type { BacklogRun } from './backlog.js';
import type { HangingRun } from './hanging.js';
import type { FanoutResult, HeraldResult, IdleResult } from './herald.js';
import { LATENCY_TARGET_MS, type LatencyFloorResult, type LatencyResult } from './latency.js';
import type { ThroughputResult } from './limit.js';
import { round } from './util.js';

/** The issue's targets for the backlog and the hanging receiver. */
export const BACKLOG_RSS_TARGET_MIB = 300e6 / 2 ** 20; // 300 MB = 286.1 MiB
export const BACKLOG_RATIO_TARGET = 0.8;
export const HANGING_RATIO_TARGET = 0.9;
/** The end-to-end targets against the limit; the fan-out's "all delivered at the end-to-end rate above" is held to them too. */
export const E2E_TARGET = { sqlite: 0.7, postgres: 0.5 } as const;

/** The big backlog and the small reference on one engine; ratio = big drain rate / small drain rate. */
export interface BacklogResult {
  engine: 'sqlite' | 'postgres';
  small: BacklogRun | null;
  big: BacklogRun | null;
  ratio: number | null;
}

/** The run where every origin answers and the one where origin 0 hangs; ratio = hanging rate / healthy rate. */
export interface HangingResult {
  engine: 'sqlite' | 'postgres';
  /** Which of the BENCH_ROUNDS pairs. */
  round?: number;
  allAnswer: HangingRun | null;
  oneHangs: HangingRun | null;
  ratio: number | null;
}

export interface Report {
  date: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; memoryGiB: number };
  sizes: Record<string, unknown>;
  throughput: (ThroughputResult | HeraldResult)[];
  ratios: { name: string; value: number; rounds?: number[]; raw?: number }[];
  fanout: FanoutResult[];
  latency: LatencyResult[];
  /** The latency scenario's floor, measured in the same run (null when it did not run). */
  latencyFloor: LatencyFloorResult | null;
  backlog: BacklogResult[];
  hanging: HangingResult[];
  idle: IdleResult[];
  notes: string[];
  profiles: unknown[];
}

const fmt = (n: number) => n.toLocaleString('en-US');
const engineName = (e: 'sqlite' | 'postgres') => (e === 'sqlite' ? 'SQLite' : 'PostgreSQL');
const machineCells = (m: { busyPct: number; iowaitPct: number; othersPct: number }) => [`${m.busyPct}% / ${m.iowaitPct}%`, `${m.othersPct}%`];

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

/**
 * The limit around round `round`: the mean of its runs before and after that round (run.ts),
 * null without one. The machine's speed drifts within minutes (one session here measured the
 * limit at 5,318 and then 7,126/s), so each run is compared with the limit measured beside it.
 */
export function limitAround(results: (ThroughputResult | HeraldResult)[], round: number): number | null {
  const runs = results.filter((r) => r.scenario.startsWith('limit') && ((r.round ?? 0) === round - 1 || (r.round ?? 0) === round)).map((r) => r.perSecond);
  return runs.length === 0 ? null : runs.reduce((a, b) => a + b, 0) / runs.length;
}

/**
 * The ratios of the throughput scenarios. Each run is compared with the limit around it: the
 * mean of the limit's run before its round and the one after (run.ts, BENCH_ROUNDS), so a
 * machine whose speed drifts during the run moves the reference with it. With several rounds
 * the ratio is the median of the rounds' (listed in `rounds`); Herald against BullMQ is
 * Herald's median rate against BullMQ's one run.
 */
export function ratios(results: (ThroughputResult | HeraldResult)[]): { name: string; value: number; rounds?: number[] }[] {
  const bullmq = results.find((r) => r.scenario.startsWith('BullMQ'));
  const out: { name: string; value: number; rounds?: number[] }[] = [];
  for (const engine of ['sqlite', 'postgres'] as const) {
    const runs = results.filter(isHerald).filter((h) => h.engine === engine);
    if (runs.length === 0) continue;
    const name = engine === 'sqlite' ? 'Herald-SQLite' : 'Herald-PG';
    const vsLimit = againstLimit(results, runs);
    if (vsLimit.length > 0) out.push({ name: `${name} / limit`, value: r2(median(vsLimit)), rounds: vsLimit.map(r2) });
    if (bullmq) out.push({ name: `${name} / BullMQ`, value: r2(median(runs.map((h) => h.perSecond)) / bullmq.perSecond) });
  }
  const limitForBullmq = bullmq ? limitAround(results, bullmq.round ?? 1) : null;
  if (bullmq && limitForBullmq) out.push({ name: 'BullMQ / limit', value: r2(bullmq.perSecond / limitForBullmq) });
  return out;
}

/** Each of `runs` against the limit around its round (limitAround); runs without one are left out. */
function againstLimit(results: (ThroughputResult | HeraldResult)[], runs: ThroughputResult[]): number[] {
  return runs.flatMap((h) => {
    const limit = limitAround(results, h.round ?? 1);
    return limit ? [h.perSecond / limit] : [];
  });
}

const r2 = (x: number) => round(x, 2);

/** ", round n" after a name, when there are several rounds. */
const roundSuffix = (n: number | undefined, several: boolean) => (n && several ? `, round ${n}` : '');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** One row per fan-out run (runFanout: BENCH_ROUNDS events, one after the other). */
export function fanoutTable(results: FanoutResult[]): string {
  const rows = [['fan-out: 1 event to N subscriptions', 'N', 'publish answer ms', 'all delivered s', 'deliveries/s', 'Herald CPU', 'machine busy / iowait', 'others']];
  for (const f of results) {
    f.runs.forEach((r, i) => {
      const name = `Herald on ${engineName(f.engine)}${f.runs.length > 1 ? `, run ${i + 1}` : ''}`;
      rows.push([name, fmt(f.subscriptions), String(r.publishMs), r.allDeliveredSeconds.toFixed(2), fmt(r.perSecond), `${r.cpuPct}%`, `${r.machine.busyPct}% / ${r.machine.iowaitPct}%`, `${r.machine.othersPct}%`]);
    });
  }
  return pad(rows);
}

/**
 * Per engine, two ratios of the fan-out's median rate. `fan-out … / limit`: against the limit
 * runs around it, the one the targets judge (E2E_TARGET: the issue asks for all 10,000
 * delivered at the end-to-end rate above, 0.7 or 0.5 of the limit). `fan-out … / end to end`:
 * against Herald's own end-to-end rate on the same engine. The two are measured minutes apart,
 * so each is taken against the limit around it (the fan-out's: the limit runs before and
 * after the fan-outs; the end to end's: the median of its rounds' ratios) and the ratios are
 * compared; `raw` is the plain rate against the median end-to-end rate. Without limit runs,
 * the plain rates.
 */
export function fanoutRatios(fanout: FanoutResult[], throughput: (ThroughputResult | HeraldResult)[]): { name: string; value: number; rounds?: number[]; raw?: number }[] {
  const out: { name: string; value: number; rounds?: number[]; raw?: number }[] = [];
  for (const f of fanout) {
    const who = `fan-out ${f.engine === 'sqlite' ? 'SQLite' : 'PG'} /`;
    const fanLimit = limitAround(throughput, f.round ?? 0);
    if (fanLimit) out.push({ name: `${who} limit`, value: r2(f.perSecond / fanLimit), rounds: f.runs.map((r) => r2(r.perSecond / fanLimit)) });
    const e2e = throughput.filter(isHerald).filter((h) => h.engine === f.engine);
    if (e2e.length === 0) continue;
    const name = `${who} end to end`;
    const raw = median(e2e.map((h) => h.perSecond));
    const e2eVsLimit = againstLimit(throughput, e2e);
    if (fanLimit && e2eVsLimit.length === e2e.length) {
      const base = median(e2eVsLimit);
      out.push({ name, value: r2(f.perSecond / fanLimit / base), rounds: f.runs.map((r) => r2(r.perSecond / fanLimit / base)), raw: r2(f.perSecond / raw) });
    } else {
      out.push({ name, value: r2(f.perSecond / raw), rounds: f.runs.map((r) => r2(r.perSecond / raw)) });
    }
  }
  return out;
}

/** Per engine, the median of the hanging scenario's pairs: the healthy origins' rate with origin 0 hanging against without. */
export function hangingRatios(hanging: HangingResult[]): { name: string; value: number; rounds?: number[] }[] {
  const out: { name: string; value: number; rounds?: number[] }[] = [];
  for (const engine of ['sqlite', 'postgres'] as const) {
    const values = hanging.filter((h) => h.engine === engine && h.ratio !== null).map((h) => h.ratio!);
    if (values.length > 0) out.push({ name: `hanging ${engine === 'sqlite' ? 'SQLite' : 'PG'}: healthy origins with origin 0 hanging / without`, value: r2(median(values)), rounds: values });
  }
  return out;
}

const FLOOR_LABEL = 'floor: fdatasync + one POST, no storage';

export function latencyTable(results: LatencyResult[], floor: LatencyFloorResult | null = null): string {
  const rows = [['publish latency, open loop', 'events/s x s', 'subs', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', `late (> ${LATENCY_TARGET_MS} ms)`, 'errors', 'deliveries/s', 'backlog at end', 'kept up', 'Herald CPU', 'machine busy / iowait', 'others']];
  for (const r of results) {
    rows.push([
      `Herald on ${engineName(r.engine)}`,
      `${fmt(r.rate)} x ${r.seconds}`,
      String(r.subs),
      String(r.p50Ms),
      String(r.p99Ms),
      String(r.p999Ms),
      String(r.maxMs),
      fmt(r.late),
      fmt(r.errors),
      fmt(r.deliveries.perSecond),
      fmt(r.deliveries.backlogAtEnd),
      r.deliveries.keptUp ? 'yes' : 'no',
      `${r.cpuPct}%`,
      ...machineCells(r.machine),
    ]);
  }
  if (floor) {
    rows.push([
      FLOOR_LABEL,
      `${fmt(floor.rate)} x ${floor.seconds}`,
      '1',
      String(floor.p50Ms),
      String(floor.p99Ms),
      String(floor.p999Ms),
      String(floor.maxMs),
      fmt(floor.late),
      fmt(floor.errors),
      '',
      '',
      '',
      `${floor.cpuPct}%`,
      ...machineCells(floor.machine),
    ]);
  }
  return pad(rows);
}

export function backlogTable(results: BacklogResult[]): string {
  const rows = [['backlog, receiver down then back', 'pending', 'publish s', 'first delivery s', 'drain s', 'deliveries/s', 'max RSS MiB', 'Herald CPU', 'machine busy / iowait', 'others']];
  for (const r of results) {
    for (const run of [r.small, r.big]) {
      if (!run) continue;
      rows.push([
        `Herald on ${engineName(run.engine)}`,
        fmt(run.backlog),
        run.publishSeconds.toFixed(1),
        run.firstDeliverySeconds.toFixed(2),
        `${run.drainSeconds.toFixed(1)}${run.complete ? '' : ' (cut)'}`,
        fmt(run.perSecond),
        run.maxRssMiB.toFixed(1),
        `${run.cpuPct}%`,
        ...machineCells(run.machine),
      ]);
    }
  }
  return pad(rows);
}

export function hangingTable(results: HangingResult[]): string {
  const rows = [['receivers: healthy origins 1..n-1', 'origin 0', 'deliveries', 'seconds', 'deliveries/s', 'origin 0 held', 'Herald CPU', 'machine busy / iowait', 'others']];
  for (const r of results) {
    for (const run of [r.allAnswer, r.oneHangs]) {
      if (!run) continue;
      rows.push([
        `Herald on ${engineName(run.engine)}${roundSuffix(r.round, results.some((x) => (x.round ?? 1) > 1))}`,
        run.hanging ? 'hangs' : 'answers',
        fmt(run.healthyDeliveries),
        run.seconds.toFixed(2),
        fmt(run.perSecond),
        fmt(run.held),
        `${run.cpuPct}%`,
        ...machineCells(run.machine),
      ]);
    }
  }
  return pad(rows);
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Bar {
  label: string;
  value: number;
  /** Printed after the bar. */
  text: string;
}

interface Section {
  title: string;
  bars: Bar[];
  /** A vertical line at a target value, e.g. the latency target. */
  marker?: { value: number; label: string };
}

/** The chart's sections: what the report has, each bar scaled within its section. */
function sections(report: Report): Section[] {
  const out: Section[] = [];
  // Each throughput run and the fan-out against the limit around it (see ratios, fanoutRatios).
  const vsLimit = (perSecond: number, round: number | undefined) => {
    const around = round === undefined ? null : limitAround(report.throughput, round);
    return around ? `  (${(perSecond / around).toFixed(2)} x limit)` : '';
  };
  const throughput: Bar[] = report.throughput.map((r) => ({ label: r.scenario, value: r.perSecond, text: `${fmt(r.perSecond)}/s${r.scenario.startsWith('limit') ? '' : vsLimit(r.perSecond, r.round ?? 1)}` }));
  for (const f of report.fanout) {
    throughput.push({ label: `fan-out, ${fmt(f.subscriptions)} subs (${engineName(f.engine)})`, value: f.perSecond, text: `${fmt(f.perSecond)}/s${vsLimit(f.perSecond, f.round)}, publish ${f.publishMs} ms` });
  }
  if (throughput.length > 0) out.push({ title: 'Deliveries per second (higher is better)', bars: throughput });
  if (report.latency.length > 0) {
    const rate = report.latency[0]!.rate;
    out.push({
      title: `Publish answer time at ${fmt(rate)} events/s, open loop: p99 in ms (lower is better)`,
      bars: [
        ...report.latency.map((l) => ({
          label: `Herald on ${engineName(l.engine)}`,
          value: l.p99Ms,
          text: `p50 ${l.p50Ms} / p99 ${l.p99Ms} / p99.9 ${l.p999Ms} ms; deliveries ${l.deliveries.keptUp ? 'kept up' : 'fell behind'}${report.latencyFloor ? `; ${(l.p99Ms / report.latencyFloor.p99Ms).toFixed(2)} x floor` : ''}`,
        })),
        ...(report.latencyFloor ? [{
          label: FLOOR_LABEL,
          value: report.latencyFloor.p99Ms,
          text: `p50 ${report.latencyFloor.p50Ms} / p99 ${report.latencyFloor.p99Ms} / p99.9 ${report.latencyFloor.p999Ms} ms`,
        }] : []),
      ],
      marker: { value: LATENCY_TARGET_MS, label: `${LATENCY_TARGET_MS} ms target` },
    });
  }
  const backlog: Bar[] = [];
  for (const b of report.backlog) {
    for (const run of [b.small, b.big]) {
      if (!run) continue;
      const ratio = run === b.big && b.ratio !== null ? `, ${b.ratio.toFixed(2)} x the small backlog's` : '';
      backlog.push({ label: `${fmt(run.backlog)} pending (${engineName(run.engine)})`, value: run.perSecond, text: `${fmt(run.perSecond)}/s${run.complete ? '' : ' (drain cut short)'}${ratio}; max RSS ${run.maxRssMiB.toFixed(0)} MiB` });
    }
  }
  if (backlog.length > 0) out.push({ title: 'Draining a backlog after the receiver comes back: deliveries per second', bars: backlog });
  const hanging: Bar[] = [];
  for (const h of report.hanging) {
    for (const run of [h.allAnswer, h.oneHangs]) {
      if (!run) continue;
      const ratio = run === h.oneHangs && h.ratio !== null ? `  (${h.ratio.toFixed(2)} x without it)` : '';
      const round = roundSuffix(h.round, report.hanging.some((x) => (x.round ?? 1) > 1));
      hanging.push({ label: `origin 0 ${run.hanging ? 'hangs' : 'answers'} (${engineName(run.engine)}${round})`, value: run.perSecond, text: `${fmt(run.perSecond)}/s${ratio}` });
    }
  }
  if (hanging.length > 0) {
    const o = report.hanging.find((h) => h.allAnswer ?? h.oneHangs);
    const n = (o?.allAnswer ?? o?.oneHangs)?.origins ?? 0;
    out.push({ title: `${n} receiver origins, one hanging until the timeout: deliveries per second to the other ${n - 1}`, bars: hanging });
  }
  return out;
}

/** Horizontal bar charts, one section per kind of measurement, hand-written SVG. */
export function svgChart(report: Report): string {
  const parts: string[] = [];
  const left = 290;
  const width = 1000;
  const rowH = 34;
  // One colour per sender, so the rounds of one read as one series: the limit and the floor
  // grey, BullMQ orange, Herald on SQLite blue and on PostgreSQL green (a fan-out purple).
  const colour = (label: string) =>
    /^(limit|floor)/.test(label) ? '#8c8c8c'
      : label.includes('BullMQ') ? '#d9822b'
        : label.startsWith('fan-out') ? '#7a5cd6'
          : label.includes('PostgreSQL') ? '#2bb673'
            : label.includes('SQLite') ? '#2b7bd9' : '#c94f7c';
  let y = 64;
  for (const section of sections(report)) {
    parts.push(`<text x="20" y="${y + 16}" font-size="15" font-weight="600">${esc(section.title)}</text>`);
    y += 26;
    const max = Math.max(1e-9, ...section.bars.map((b) => b.value), section.marker?.value ?? 0);
    // Room for the longest text after its bar (about 7 px a character at 13 px).
    const barArea = Math.max(150, width - left - 20 - 7 * Math.max(...section.bars.map((b) => b.text.length)));
    const top = y;
    for (const b of section.bars) {
      const w = Math.max(1, Math.round((b.value / max) * barArea));
      parts.push(
        `<text x="${left - 10}" y="${y + 19}" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${left}" y="${y + 4}" width="${w}" height="22" rx="3" fill="${colour(b.label)}"/>`,
        `<text x="${left + w + 8}" y="${y + 19}">${esc(b.text)}</text>`,
      );
      y += rowH;
    }
    parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${y}" stroke="#333"/>`);
    if (section.marker) {
      const x = left + Math.round((section.marker.value / max) * barArea);
      parts.push(
        `<line x1="${x}" y1="${top}" x2="${x}" y2="${y}" stroke="#c00" stroke-dasharray="4 3"/>`,
        `<text x="${x + 4}" y="${y + 12}" fill="#c00" font-size="11">${esc(section.marker.label)}</text>`,
      );
      y += 12;
    }
    y += 16;
  }
  const height = y + 30;
  const header = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="20" y="28" font-size="17" font-weight="600">Herald benchmark</text>`,
    `<text x="20" y="48" fill="#555">${esc(`${report.date.slice(0, 16).replace('T', ' ')} UTC, ${report.machine.cpus} CPUs, Node ${report.machine.node}; ${String(report.sizes.subs)} subs x ${String(report.sizes.events)} events, concurrency ${String(report.sizes.concurrency)}`)}</text>`,
  ];
  parts.push(`<text x="20" y="${height - 14}" fill="#777" font-size="11">npm run bench; ratios measured side by side in one run; bench/results/latest.json has every number</text>`);
  parts.push('</svg>');
  return [...header, ...parts].join('\n') + '\n';
}
