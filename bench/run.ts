/**
 * `npm run bench`: every scenario in one go, against one receiver process. Prints a table and
 * the ratios, writes bench/results/latest.json and bench/results/latest.svg. Sizes and the
 * choice of scenarios come from BENCH_* variables (bench/config.ts); Herald's own
 * HERALD_CONCURRENCY and HERALD_CONNECTIONS_PER_ORIGIN apply to every scenario alike.
 * Only ratios from one run mean much: the machines this runs on are shared and noisy.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { buildCompiledCli } from './compiled.js';
import { loadBenchConfig, type BenchConfig } from './config.js';
import { measureIdle, runFanout, runHeraldThroughput, type HeraldResult } from './herald.js';
import { runLimit, type ThroughputResult } from './limit.js';
import { formatProfile, mainThreadProfile, summarizeProfile, type ProfileSummary } from './profile.js';
import { Receiver } from './receiver.js';
import { fanoutTable, ratios, svgChart, throughputTable, type Report } from './report.js';
import { withTimeout } from './util.js';

const RESULTS = 'bench/results';
const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const cfg = loadBenchConfig();
  const has = (s: Parameters<BenchConfig['scenarios']['has']>[0]) => cfg.scenarios.has(s);
  mkdirSync(RESULTS, { recursive: true });
  const sizes = {
    subs: cfg.subs,
    events: cfg.events,
    deliveries: cfg.subs * cfg.events,
    limitDeliveries: cfg.limitDeliveries,
    publishConcurrency: cfg.publishConcurrency,
    concurrency: cfg.concurrency,
    connectionsPerOrigin: cfg.connectionsPerOrigin,
    fanout: cfg.fanout,
    profiled: cfg.profile,
  };
  const report: Report = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?', node: process.versions.node, platform: `${os.platform()} ${os.release()}`, memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
    sizes,
    throughput: [],
    ratios: [],
    fanout: [],
    idle: [],
    notes: [],
    profiles: [],
  };
  say(`Herald benchmark: ${cfg.subs} subscriptions x ${cfg.events} events = ${cfg.subs * cfg.events} deliveries per scenario; ` +
    `concurrency ${cfg.concurrency}, ${cfg.connectionsPerOrigin} connections per origin; ${report.machine.cpus} CPUs${cfg.profile ? '; PROFILED (slower)' : ''}`);
  let failures = 0;
  const attempt = async <T>(name: string, fn: () => Promise<T>): Promise<T | null> => {
    const t = performance.now();
    say(`- ${name} ...`);
    try {
      const result = await withTimeout(fn(), cfg.timeoutMs + 120_000, name);
      say(`  done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      return result;
    } catch (err) {
      failures++;
      report.notes.push(`${name} failed: ${(err as Error).message}`);
      say(`  FAILED: ${(err as Error).stack ?? err}`);
      return null;
    }
  };

  if (has('idle')) {
    const tsx = await attempt('idle memory, node --import tsx src/cli.ts', () => measureIdle('node --import tsx src/cli.ts'));
    if (tsx) report.idle.push(tsx);
    const build = buildCompiledCli();
    if (build) {
      const compiled = await attempt('idle memory, compiled (node dist/cli.js)', () => measureIdle('node dist/cli.js (compiled)', build.cli));
      if (compiled) report.idle.push(compiled);
      build.cleanup();
    }
  }

  const receiver = await Receiver.start();
  try {
    const push = (r: ThroughputResult | HeraldResult | null) => r && report.throughput.push(r);
    if (has('limit')) push(await attempt('limit: plain undici loop', () => runLimit(cfg, receiver)));
    if (has('bullmq')) push(await attempt('BullMQ + Redis', () => loadBullmq().then((m) => m.runBullmq(cfg, receiver))));
    if (has('sqlite')) push(await attempt('Herald on SQLite', () => runHeraldThroughput('sqlite', cfg, receiver)));
    if (has('postgres')) push(await attempt('Herald on PostgreSQL', () => runHeraldThroughput('postgres', cfg, receiver)));
    if (has('fanout') && cfg.fanout > 0) {
      for (const engine of cfg.fanoutEngines) {
        const f = await attempt(`fan-out: 1 event to ${cfg.fanout} subscriptions on ${engine}`, () => runFanout(engine, cfg, receiver));
        if (f) report.fanout.push(f);
      }
    }
  } finally {
    await receiver.stop();
  }

  report.ratios = ratios(report.throughput);
  if (cfg.profile) {
    for (const name of ['herald-sqlite', 'herald-postgres', ...cfg.fanoutEngines.map((e) => `herald-fanout-${e}`)]) {
      const file = mainThreadProfile(`${RESULTS}/profiles/${name}`);
      if (file) report.profiles.push(summarizeProfile(file));
    }
  }

  say('');
  if (report.throughput.length > 0) say(throughputTable(report.throughput));
  for (const r of report.throughput) if (r.notes.length > 0) say(`  ${r.scenario}: ${r.notes.join('; ')}`);
  for (const r of report.throughput) {
    if ('publish' in r) say(`  ${r.scenario}: publish ${r.publish.events} events in ${r.publish.seconds} s (${r.publish.perSecond}/s), p50 ${r.publish.p50Ms} ms, p99 ${r.publish.p99Ms} ms, max ${r.publish.maxMs} ms; RSS after ${r.rssAfterMiB} MiB`);
  }
  say('  sender CPU: the process that delivers (the loop, the BullMQ worker, Herald), % of one core; machine: all CPUs;\n  others: CPU no process of the scenario used (neighbours), % of one core');
  if (report.ratios.length > 0) say('\nratios (deliveries/s): ' + report.ratios.map((r) => `${r.name} = ${r.value}`).join(', '));
  if (report.fanout.length > 0) {
    say('\n' + fanoutTable(report.fanout));
    for (const f of report.fanout) say(`  ${f.engine}: seeding ${f.subscriptions} subscriptions over the API took ${f.seedSeconds} s${f.notes.length ? '; ' + f.notes.join('; ') : ''}`);
    if (cfg.fanout < 10_000) say(`  sized down: the issue asks for 10,000 subscriptions (BENCH_FANOUT=10000); the default is ${cfg.fanout} so the run stays within minutes`);
  }
  if (report.idle.length > 0) say('\nidle resident memory after 5 s: ' + report.idle.map((i) => `${i.rssMiB} MiB (${i.runner})`).join(', '));
  for (const p of report.profiles) say('\n' + formatProfile(p as ProfileSummary));
  for (const n of report.notes) say(`NOTE: ${n}`);

  writeFileSync(`${RESULTS}/latest.json`, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(`${RESULTS}/latest.svg`, svgChart(report));
  say(`\nwrote ${RESULTS}/latest.json and ${RESULTS}/latest.svg`);
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

/**
 * The BullMQ baseline needs bullmq and ioredis, which are not in package.json (their lock
 * entries break `npm ci` with npm 11 here): `npm install --no-save bullmq@6 ioredis`.
 * A computed specifier keeps the type-check from needing them.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function loadBullmq(): Promise<{ runBullmq: (cfg: any, receiver: any) => Promise<any> }> {
  try {
    await import(String('bullmq'));
  } catch {
    throw new Error('bullmq is not installed: run `npm install --no-save bullmq@6 ioredis` to include the BullMQ baseline');
  }
  return import(new URL('./bullmq.ts', import.meta.url).href);
}
