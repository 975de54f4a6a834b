import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SignInLimiter } from '../src/oauth/session.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

test('the sign-in limiter on a real store: five failures, then refused from memory until the window ends', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-limiter-'));
  const store = new SqliteStore(join(dir, 'h.db'));
  try {
    await store.migrate();
    let writes = 0;
    const counted = {
      countSignInAttempt: (...args: Parameters<typeof store.oauth.countSignInAttempt>) => (writes++, store.oauth.countSignInAttempt(...args)),
      clearSignInAttempts: (key: string) => store.oauth.clearSignInAttempts(key),
    };
    const limiter = new SignInLimiter(counted, 5, 60_000);
    const T = 1_700_000_000_000;
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await limiter.attempt('203.0.113.9', 'ann@acme.test', T + i));
    assert.deepEqual(answers, [true, true, true, true, true, false, false, false]);
    assert.equal(writes, 6, 'the refused attempts after the first are answered from memory');
    assert.equal(await limiter.attempt('203.0.113.9', 'bob@acme.test', T), true, 'another email counts apart');
    assert.equal(await limiter.attempt('198.51.100.7', 'ann@acme.test', T), true, 'so does another address');
    // Another process (a second limiter on the same database) sees the same count.
    assert.equal(await new SignInLimiter(store.oauth, 5, 60_000).attempt('203.0.113.9', 'ann@acme.test', T + 10), false);
    assert.equal(await limiter.attempt('203.0.113.9', 'ann@acme.test', T + 60_000), true, 'a new window once it ended');
    await limiter.succeeded('203.0.113.9', 'ann@acme.test');
    for (let i = 0; i < 5; i++) assert.equal(await limiter.attempt('203.0.113.9', 'ann@acme.test', T + 60_001 + i), true, 'a success forgets the failures');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
