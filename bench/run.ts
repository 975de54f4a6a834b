/**
 * `npm run bench`: every scenario in one go, against one receiver process (the backlog and
 * hanging scenarios start their own: on a reserved port, on several ports). Prints the tables
 * and the ratios, writes bench/results/latest.json and bench/results/latest.svg. Sizes and the
 * choice of scenarios come from BENCH_* variables (bench/config.ts); Herald's own
 * HERALD_CONCURRENCY and HERALD_CONNECTIONS_PER_ORIGIN apply to every scenario alike.
 * Only ratios from one run mean much: the machines this runs on are shared and noisy.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { backlogRetrySchedule, runBacklog } from './backlog.js';
import { buildCompiledCli } from './compiled.js';
import { loadBenchConfig, type BenchConfig } from './config.js';
import { runHangingOnce } from './hanging.js';
import { measureIdle, runFanout, runHeraldThroughput, type HeraldResult } from './herald.js';
import { START_FLAGS } from './herald-process.js';
import { LATENCY_TARGET_MS, runLatency, runLatencyFloor } from './latency.js';
import { runLimit, type ThroughputResult } from './limit.js';
import { formatProfile, mainThreadProfile, summarizeProfile, type ProfileSummary } from './profile.js';
import { Receiver } from './receiver.js';
import {
  BACKLOG_RATIO_TARGET,
  BACKLOG_RSS_TARGET_MIB,
  backlogTable,
  E2E_TARGET,
  fanoutRatios,
  fanoutTable,
  hangingRatios,
  HANGING_RATIO_TARGET,
  hangingTable,
  latencyTable,
  ratios,
  svgChart,
  throughputTable,
  type Report,
} from './report.js';
import { round, withTimeout } from './util.js';

const RESULTS = 'bench/results';
/** ", round r" after a scenario's name, when it runs in more than one round. */
const roundTag = (r: number, rounds: number) => (rounds > 1 ? `, round ${r}` : '');
const say = (line: string) => process.stdout.write(`${line}\n`);
const fmt = (n: number) => n.toLocaleString('en-US');

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
    maxInFlightPerOrigin: cfg.maxInFlightPerOrigin,
    singleOriginInFlight: cfg.singleOriginInFlight,
    seedConcurrency: cfg.seedConcurrency,
    fanout: cfg.fanout,
    latency: cfg.latency,
    backlog: { ...cfg.backlog, retrySchedule: `1s x ${backlogRetrySchedule(cfg).split(',').length}` },
    hanging: cfg.hanging,
    profiled: cfg.profile,
  };
  const report: Report = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?', node: process.versions.node, platform: `${os.platform()} ${os.release()}`, memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
    sizes,
    throughput: [],
    ratios: [],
    fanout: [],
    latency: [],
    latencyFloor: null,
    backlog: [],
    hanging: [],
    idle: [],
    notes: [],
    profiles: [],
  };
  say(`Herald benchmark: ${cfg.subs} subscriptions x ${cfg.events} events = ${cfg.subs * cfg.events} deliveries per scenario; ` +
    `concurrency ${cfg.concurrency}, ${cfg.connectionsPerOrigin} connections per origin, at most ${cfg.singleOriginInFlight} in flight to the one receiver (${cfg.maxInFlightPerOrigin} per origin with ten); ${report.machine.cpus} CPUs${cfg.profile ? '; PROFILED (slower)' : ''}`);
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
    const flags = START_FLAGS.map((f) => `${f} `).join('');
    const tsx = await attempt(`idle memory, node ${flags}--import tsx src/cli.ts`, () => measureIdle(`node ${flags}--import tsx src/cli.ts`));
    if (tsx) report.idle.push(tsx);
    const build = buildCompiledCli();
    if (build) {
      const compiled = await attempt(`idle memory, compiled (node ${flags}dist/cli.js, as npm start)`, () => measureIdle(`node ${flags}dist/cli.js (compiled, as npm start)`, build.cli));
      if (compiled) report.idle.push(compiled);
      build.cleanup();
    }
  }

  const receiver = await Receiver.start();
  try {
    const push = (r: ThroughputResult | HeraldResult | null) => r && report.throughput.push(r);
    // Rounds (BENCH_ROUNDS): the limit, BullMQ once, then per round Herald on each engine and
    // the limit again; each run is compared with the limit runs around it (report.ts, ratios).
    const inRound = <T extends ThroughputResult | HeraldResult>(round: number, r: T | null) => r && Object.assign(r, { round });
    const rounds = has('sqlite') || has('postgres') ? cfg.rounds : 1;
    const tag = (r: number) => roundTag(r, rounds);
    if (has('limit')) push(inRound(0, await attempt('limit: plain undici loop', () => runLimit(cfg, receiver))));
    if (has('bullmq')) push(inRound(1, await attempt('BullMQ + Redis', () => loadBullmq().then((m) => m.runBullmq(cfg, receiver)))));
    for (let r = 1; r <= rounds; r++) {
      for (const engine of ['sqlite', 'postgres'] as const) {
        if (!has(engine)) continue;
        const run = await attempt(`Herald on ${engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}${tag(r)}`, () => runHeraldThroughput(engine, cfg, receiver));
        push(inRound(r, run && Object.assign(run, { scenario: `${run.scenario}${tag(r)}` })));
      }
      if (has('limit') && (has('bullmq') || has('sqlite') || has('postgres'))) {
        const name = rounds > 1 ? `limit, after round ${r}: undici loop` : 'limit again, after the others: undici loop';
        push(inRound(r, await attempt(name.replace(': undici loop', ''), () => runLimit(cfg, receiver, name))));
      }
    }
    if (has('fanout') && cfg.fanout > 0) {
      // The fan-out is compared with the end-to-end rate measured minutes before: both are
      // taken against the limit around them (fanoutRatios), so the limit runs once more after it.
      const fanoutRound = rounds + 1;
      for (const engine of cfg.fanoutEngines) {
        const f = await attempt(`fan-out: 1 event to ${cfg.fanout} subscriptions on ${engine}`, () => runFanout(engine, cfg, receiver));
        if (f) report.fanout.push(Object.assign(f, { round: fanoutRound }));
      }
      if (has('limit') && report.fanout.length > 0) {
        push(inRound(fanoutRound, await attempt('limit, after the fan-out', () => runLimit(cfg, receiver, 'limit, after the fan-out: undici loop'))));
      }
    }
    if (has('latency')) {
      const { rate, seconds, subs } = cfg.latency;
      report.latencyFloor = await attempt(`latency floor: ${rate} events/s for ${seconds} s, Fastify + fdatasync + one signed POST each, no storage`, () => runLatencyFloor(cfg, receiver));
      for (const engine of cfg.latency.engines) {
        const l = await attempt(`latency: ${rate} events/s for ${seconds} s, open loop, ${subs} subscription(s) each, on ${engine}`, () => runLatency(engine, cfg, receiver));
        if (l) report.latency.push(l);
      }
    }
  } finally {
    await receiver.stop();
  }
  // The backlog and hanging scenarios start receivers of their own (on a reserved port, on several ports).
  if (has('backlog')) {
    for (const engine of cfg.backlog.engines) {
      const small = await attempt(`backlog: ${cfg.backlog.small} deliveries pending, receiver down, then back, on ${engine}`, () => runBacklog(engine, cfg, cfg.backlog.small));
      const big = await attempt(`backlog: ${cfg.backlog.size} deliveries pending, receiver down, then back, on ${engine}`, () => runBacklog(engine, cfg, cfg.backlog.size));
      report.backlog.push({ engine, small, big, ratio: small && big ? round(big.perSecond / small.perSecond, 2) : null });
    }
  }
  if (has('hanging')) {
    const { origins, timeoutMs } = cfg.hanging;
    // BENCH_ROUNDS pairs (all answer, then origin 0 hangs), each run lasting a few seconds:
    // the median pair's ratio is the result (one pair measured 0.79 in a full run, then
    // 0.94, 1.04 and 1.10 in three runs of this scenario alone, minutes later).
    for (const engine of cfg.hanging.engines) {
      for (let r = 1; r <= cfg.rounds; r++) {
        const allAnswer = await attempt(`hanging: ${origins} receiver origins, all answer, on ${engine}${roundTag(r, cfg.rounds)}`, () => runHangingOnce(engine, cfg, false));
        const oneHangs = await attempt(`hanging: ${origins} receiver origins, origin 0 hangs (timeout ${timeoutMs / 1000} s), on ${engine}${roundTag(r, cfg.rounds)}`, () => runHangingOnce(engine, cfg, true));
        report.hanging.push({ engine, round: r, allAnswer, oneHangs, ratio: allAnswer && oneHangs ? round(oneHangs.perSecond / allAnswer.perSecond, 2) : null });
      }
    }
  }

  report.ratios = [...ratios(report.throughput), ...fanoutRatios(report.fanout, report.throughput), ...hangingRatios(report.hanging)];
  if (cfg.profile) {
    const names = [
      'herald-sqlite',
      'herald-postgres',
      ...cfg.fanoutEngines.map((e) => `herald-fanout-${e}`),
      ...(has('latency') ? cfg.latency.engines.map((e) => `herald-latency-${e}`) : []),
      ...(has('backlog') ? cfg.backlog.engines.flatMap((e) => [cfg.backlog.small, cfg.backlog.size].map((n) => `herald-backlog-${e}-${n}`)) : []),
      ...(has('hanging') ? cfg.hanging.engines.flatMap((e) => [`herald-hanging-${e}-ok`, `herald-hanging-${e}-hang`]) : []),
    ];
    for (const name of names) {
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
  say('  sender CPU / Herald CPU: the process that delivers (the loop, the BullMQ worker, Herald), % of one core; machine: all CPUs;\n  others: CPU no process of the scenario used (neighbours), % of one core');
  if (report.ratios.length > 0) {
    const limits = report.throughput.filter((r) => r.scenario.startsWith('limit')).map((r) => fmt(r.perSecond));
    const of = limits.length > 1 ? ` (limit runs ${limits.join(', ')}/s; each run against the mean of the limit runs before and after it)` : '';
    say(`\nratios (deliveries/s)${of}: ` + report.ratios.map((r) => `${r.name} = ${r.value}${r.rounds && r.rounds.length > 1 ? ` (median of rounds ${r.rounds.join(', ')})` : ''}`).join(', '));
  }
  if (report.fanout.length > 0) {
    say('\n' + fanoutTable(report.fanout));
    for (const f of report.fanout) {
      const who = `fan-out ${f.engine === 'sqlite' ? 'SQLite' : 'PG'} /`;
      const vsLimit = report.ratios.find((r) => r.name === `${who} limit`);
      const vs = report.ratios.find((r) => r.name === `${who} end to end`);
      const target = E2E_TARGET[f.engine];
      say(`  ${f.engine}: median ${fmt(f.perSecond)} deliveries/s of ${f.runs.length} run(s)` +
        `${vsLimit ? `, ${vsLimit.value} x the limit around it (runs ${vsLimit.rounds!.join(', ')}; the end-to-end target >= ${target}: ${vsLimit.value >= target ? 'met' : 'MISSED'})` : ''}` +
        `${vs ? `, ${vs.value} x Herald's own end-to-end rate (runs ${vs.rounds!.join(', ')}${vs.raw !== undefined ? `; ${vs.raw} x in deliveries/s, not corrected for the machine's drift` : ''})` : ''}; ` +
        `slowest publish answer ${f.maxPublishMs} ms (target < 100 ms); seeding ${fmt(f.subscriptions)} subscriptions over the API took ${f.seedSeconds} s${f.notes.length ? '; ' + f.notes.join('; ') : ''}`);
    }
    if (cfg.fanout < 10_000) say(`  sized down: the issue asks for 10,000 subscriptions (BENCH_FANOUT=10000); this run used ${cfg.fanout}`);
  }
  if (report.latency.length > 0) {
    say('\n' + latencyTable(report.latency, report.latencyFloor));
    say(`  times count from each publish's scheduled start (open loop); target: p99 under ${LATENCY_TARGET_MS} ms. "kept up": the deliveries were less than one second's worth behind when publishing stopped`);
    for (const l of report.latency) {
      say(`  ${l.engine}: ${fmt(l.answered)} of ${fmt(l.events)} answered; p99 ${l.p99Ms} ms ${l.p99Ms < LATENCY_TARGET_MS ? 'meets' : 'misses'} the target; ` +
        `deliveries: ${fmt(l.deliveries.inWindow)} of ${fmt(l.deliveries.expected)} within the window, at most ${fmt(l.deliveries.maxBacklog)} behind, ` +
        `${l.deliveries.drainSeconds === null ? 'the rest did not finish within BENCH_TIMEOUT' : `the rest took ${l.deliveries.drainSeconds} s more`}; ` +
        `publisher lag p99 ${l.senderLagP99Ms} ms, at worst ${l.senderLagMaxMs} ms${l.notes.length ? '; ' + l.notes.join('; ') : ''}`);
    }
    const floor = report.latencyFloor;
    if (floor) {
      say(`  floor: a Fastify server that fdatasyncs each publish and then sends it as one signed POST, storing nothing else (bench/latency-floor-process.ts), same publisher and receiver; ` +
        `${fmt(floor.answered)} of ${fmt(floor.events)} answered, ${fmt(floor.delivered)} delivered in the window; publisher lag p99 ${floor.senderLagP99Ms} ms`);
      say(`  p99 against the floor's: ${report.latency.map((l) => `${l.engine} ${(l.p99Ms / floor.p99Ms).toFixed(2)} x`).join(', ')}`);
    }
  }
  if (report.backlog.length > 0) {
    say('\n' + backlogTable(report.backlog));
    say('  first delivery: from the receiver listening again to its first request; drain: from then until nothing was pending; max RSS: Herald, sampled every second from its start');
    for (const b of report.backlog) {
      const maxRss = Math.max(b.small?.maxRssMiB ?? 0, b.big?.maxRssMiB ?? 0); // 0 when both failed: reported as n/a below
      const cut = [b.small, b.big].some((r) => r && !r.complete) ? ' (a drain was cut at BENCH_TIMEOUT: its rate is over what it drained)' : '';
      say(`  ${b.engine}: drain rate ${b.big ? fmt(b.big.backlog) : '?'} / ${b.small ? fmt(b.small.backlog) : '?'} = ${b.ratio ?? 'n/a'}${cut} (target >= ${BACKLOG_RATIO_TARGET}); ` +
        (maxRss > 0 ? `max RSS ${maxRss.toFixed(1)} MiB (target < 300 MB = ${BACKLOG_RSS_TARGET_MIB.toFixed(1)} MiB: ${maxRss < BACKLOG_RSS_TARGET_MIB ? 'met' : 'MISSED'})` : 'max RSS n/a'));
      for (const run of [b.small, b.big]) {
        if (!run) continue;
        say(`    ${fmt(run.backlog)}: ${fmt(run.events)} events x ${run.subs} subs published in ${run.publishSeconds} s (${run.publishPerSecond}/s) while ${fmt(run.attemptsWhileDown)} attempts were refused; ` +
          `RSS by phase ${JSON.stringify(run.rssByPhase)}${run.notes.length ? '; ' + run.notes.join('; ') : ''}`);
      }
    }
  }
  if (report.hanging.length > 0) {
    say('\n' + hangingTable(report.hanging));
    say(`  seconds: from the first publish until every delivery to the healthy origins had its outcome; HERALD_DELIVERY_TIMEOUT ${cfg.hanging.timeoutMs / 1000} s`);
    for (const r of report.ratios.filter((x) => x.name.startsWith('hanging'))) {
      say(`  ${r.name} = ${r.value}${r.rounds && r.rounds.length > 1 ? ` (median of rounds ${r.rounds.join(', ')})` : ''} (target >= ${HANGING_RATIO_TARGET})`);
    }
    for (const h of report.hanging) {
      for (const run of [h.allAnswer, h.oneHangs]) {
        if (!run) continue;
        say(`    ${h.engine}${h.round && cfg.rounds > 1 ? `, round ${h.round}` : ''}, origin 0 ${run.hanging ? 'hangs' : 'answers'}: answered per origin ${JSON.stringify(run.perOrigin)}, origin 0 held ${run.held}, its deliveries then ${JSON.stringify(run.origin0Statuses)}${run.notes.length ? '; ' + run.notes.join('; ') : ''}`);
      }
    }
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
 * The BullMQ baseline needs bullmq and ioredis (dev dependencies): an install without them
 * (`npm ci --omit=dev`) gets this row as failed, with the reason, instead of no benchmark.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function loadBullmq(): Promise<{ runBullmq: (cfg: any, receiver: any) => Promise<any> }> {
  try {
    await import(String('bullmq'));
  } catch {
    throw new Error('bullmq is not installed: run `npm install` (bullmq and ioredis are dev dependencies) to include the BullMQ baseline');
  }
  return import(new URL('./bullmq.ts', import.meta.url).href);
}
