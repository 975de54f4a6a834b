import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newId } from '../../src/domain/ids.js';

test('ids are the prefix and 16 random bytes in base64url, never repeated across entropy refills', () => {
  const ids = Array.from({ length: 10_000 }, () => newId('dlv')); // 160,000 bytes: about 39 refills of 4 KiB
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^dlv_[A-Za-z0-9_-]{22}$/);
  // Each id's bytes are its own: no two share a 16-byte block, even in part at a fixed offset.
  const heads = new Set(ids.map((id) => id.slice(4, 12)));
  assert.equal(heads.size, ids.length);
});
