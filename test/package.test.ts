import assert from 'node:assert/strict';
import { test } from 'node:test';

// Self-reference through package.json "exports": what an installed user imports. Runs on the
// build (`pretest` builds dist/), so a broken exports map or build fails here.
test('the package exports the server library and the SDK', async () => {
  const lib = await import('herald');
  assert.equal(typeof lib.createHerald, 'function');
  assert.equal(typeof lib.loadConfig, 'function');
  const sdk = await import('herald/sdk');
  assert.equal(typeof sdk.verifySignedRequest, 'function');
  assert.equal(typeof sdk.signRequest, 'function');
  assert.equal(
    sdk.signRequest({ key: 'value' }, 'secret'),
    '60673142fdda45f3185cbd51c070596950a9178e20f785703723ad8e0ff04833.eyJrZXkiOiJ2YWx1ZSJ9',
  );
});
