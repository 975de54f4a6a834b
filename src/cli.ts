#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError, loadConfig } from './config.js';
import { createHerald } from './herald.js';
import { openStore } from './store/index.js';

/*
 * `npm start` runs this file as `node --max-semi-space-size=8 dist/cli.js serve`. That caps
 * V8's young generation on the main thread at 8 MB a semispace, not 16. The main thread
 * allocates about 40 KB for each publish and its delivery, and what survives a scavenge
 * grows with the time between scavenges. Smaller, more frequent scavenges pause a publish
 * for less time. A node flag is the only way to set this: the main isolate's heap is
 * sized before any code runs. A host that embeds Herald chooses its own flags.
 *
 * Measured with bench/latency.ts at 1,000 publishes/s on SQLite, five alternating pairs:
 * - publish p99 25.2/14.4/36.8/24.4/25.5 ms, against 36.9/24.4/51.0/27.8/37.0 at the
 *   default (16 MB);
 * - scavenges 106-113 against 58-63 in 20 s, the longest collection 8.4-13.3 ms against
 *   9.2-18.6, and about the same time in all (286-408 ms against 290-362);
 * - 4 MB did worse than 8 (31.2 and 32.1 ms against 25.2 and 14.4 in the same rounds, with
 *   212-214 scavenges);
 * - 64 MB was worse (45.4 and 40.0 ms, each scavenge twice as long).
 * Throughput (two pairs) was within the noise: end to end SQLite 0.78/0.87 of the limit
 * against 0.79/0.71, PostgreSQL 0.68/0.68 against 0.73/0.65.
 */
const program = new Command('herald').description('Push notifications (webhooks) for SaaS APIs');

program
  .command('serve', { isDefault: true })
  .description('serve the HTTP API and run the dispatcher')
  .option('--api-only', 'serve the API, do not dispatch deliveries')
  .option('--worker-only', 'dispatch deliveries, serve no API')
  .action(async (opts: { apiOnly?: boolean; workerOnly?: boolean }) => {
    if (opts.apiOnly && opts.workerOnly) throw new ConfigError('--api-only and --worker-only exclude each other');
    const herald = await createHerald(loadConfig(), { api: !opts.workerOnly, worker: !opts.apiOnly });
    const url = await herald.start();
    herald.log.info({ url, engine: herald.store.engine }, 'herald started');
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      herald.log.info({ signal }, 'draining in-flight deliveries, then exiting');
      herald.stop().then(
        () => process.exit(0),
        (err) => {
          herald.log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });

program
  .command('migrate')
  .description('apply database migrations and exit')
  .action(async () => {
    const store = await openStore(loadConfig().databaseUrl);
    await store.migrate();
    await store.close();
    process.stdout.write('migrations applied\n');
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`herald: ${err instanceof ConfigError ? err.message : (err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
