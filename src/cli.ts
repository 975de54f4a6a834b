#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError, loadConfig } from './config.js';
import { createHerald } from './herald.js';
import { openStore } from './store/index.js';

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
