import { Agent, request } from 'undici';
import type { BenchConfig } from './config.js';
import { benchDelivery, buildBenchRequest } from './payload.js';
import type { Receiver } from './receiver.js';
import { cpuMeter, machineMeter, round, type MachineLoad } from './util.js';

export interface ThroughputResult {
  scenario: string;
  deliveries: number;
  seconds: number;
  perSecond: number;
  /** CPU of the process doing the deliveries, % of one core. */
  cpuPct: number;
  receiverCpuPct: number;
  /** The whole machine meanwhile (every process: receiver, Redis, PostgreSQL, the publisher...). */
  machine: MachineLoad;
  notes: string[];
  /**
   * Which round of the throughput scenarios (BENCH_ROUNDS) the run belongs to: 0 for the
   * limit's first run, r for the Herald runs of round r and the limit's run after them.
   */
  round?: number;
}

/**
 * Scenario 1, the limit: what this machine does with this receiver when nothing is stored.
 * `concurrency` lanes (Herald's HERALD_CONCURRENCY), one keep-alive undici Agent with
 * Herald's HERALD_CONNECTIONS_PER_ORIGIN sockets, each request signed like Herald's. Runs
 * in the bench process itself, which does nothing else meanwhile.
 */
export async function runLimit(cfg: BenchConfig, receiver: Receiver, scenario = 'limit: undici loop, no storage'): Promise<ThroughputResult> {
  const agent = new Agent({ connections: cfg.connectionsPerOrigin, keepAliveTimeout: 10_000 });
  const subs = cfg.subs;
  const send = async (i: number) => {
    const req = buildBenchRequest(benchDelivery(receiver.url, Math.floor(i / subs), i % subs), Date.now());
    const res = await request(`${receiver.url}/hooks/${i % subs}`, { method: 'POST', headers: req.headers, body: req.body, dispatcher: agent });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`receiver answered ${res.statusCode}`);
  };
  const run = async (n: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: cfg.concurrency }, async () => {
        while (next < n) await send(next++);
      }),
    );
  };

  await run(Math.min(2000, cfg.limitDeliveries)); // warm-up: sockets open, code hot
  await receiver.count(true);
  const self = cpuMeter(process.pid);
  const recv = cpuMeter(receiver.pid);
  const machine = machineMeter([process.pid, receiver.pid]);
  const t0 = performance.now();
  await run(cfg.limitDeliveries);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = self();
  const received = await receiver.count(true);
  await agent.close();
  const notes = received === cfg.limitDeliveries ? [] : [`receiver counted ${received} of ${cfg.limitDeliveries}`];
  return {
    scenario,
    deliveries: cfg.limitDeliveries,
    seconds: round(seconds, 2),
    perSecond: Math.round(cfg.limitDeliveries / seconds),
    cpuPct: cpu.cpuPct,
    receiverCpuPct: recv().cpuPct,
    machine: machine(),
    notes,
  };
}
