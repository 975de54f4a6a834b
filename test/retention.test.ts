import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { ConfigError, loadConfig } from '../src/config.js';
import { startRetention } from '../src/delivery/retention.js';
import type { Store } from '../src/store/types.js';

describe('retention', () => {
  test('HERALD_RETENTION_DAYS: default 30, an integer from 1 to 3650', () => {
    assert.equal(loadConfig({}).retentionDays, 30);
    assert.equal(loadConfig({ HERALD_RETENTION_DAYS: '1' }).retentionDays, 1);
    assert.equal(loadConfig({ HERALD_RETENTION_DAYS: '3650' }).retentionDays, 3650);
    for (const bad of ['0', '3651', '1.5', '-3', 'ten']) {
      assert.throws(() => loadConfig({ HERALD_RETENTION_DAYS: bad }), ConfigError, bad);
    }
  });

  test('the timer prunes shortly after start and then every interval, never twice at once; stop() aborts and waits', async () => {
    const calls: { before: number; batchSize: number; signal: AbortSignal | undefined }[] = [];
    let release: (() => void) | null = null;
    const store = {
      prune: (before: number, batchSize: number, signal?: AbortSignal) => {
        calls.push({ before, batchSize, signal });
        return new Promise<number>((resolve) => (release = () => resolve(7)));
      },
    } as unknown as Store;
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const started = Date.now();
    const stop = startRetention(store, log, { days: 2, firstDelayMs: 20, intervalMs: 40 });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(calls.length, 1, 'the interval does not start a second prune while one runs');
    const cutoff = started - 2 * 86_400_000;
    assert.ok(Math.abs(calls[0]!.before - cutoff) < 1000);
    assert.equal(calls[0]!.batchSize, 1000);
    release!();
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(calls.length >= 2, 'runs again on the interval');
    assert.match(lines[0]!, /"deleted":7/);
    const stopping = stop();
    assert.equal(calls.at(-1)!.signal?.aborted, true, 'a prune in progress is asked to stop');
    release!();
    await stopping;
    const n = calls.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(calls.length, n, 'no run after stop()');
  });
});
