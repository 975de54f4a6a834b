import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newId, newTimedId, timePart } from '../../src/domain/ids.js';

test('ids are the prefix and 16 random bytes in base64url, never repeated across entropy refills', () => {
  const ids = Array.from({ length: 10_000 }, () => newId('dlv')); // 160,000 bytes: about 39 refills of 4 KiB
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^dlv_[A-Za-z0-9_-]{22}$/);
  // Each id's bytes are its own: no two share a 16-byte block, even in part at a fixed offset.
  const heads = new Set(ids.map((id) => id.slice(4, 12)));
  assert.equal(heads.size, ids.length);
});

test('timed ids sort by their time as plain strings, and keep 16 random bytes', () => {
  const times = [0, 1, 35, 36, 1_700_000_000_000, 1_799_999_999_999, 2_821_109_907_455, 2_821_109_907_456, 99_999_999_999_999];
  const ids = times.map((t) => newTimedId('dlv', t));
  for (const id of ids) assert.match(id, /^dlv_[0-9a-z]{9}[A-Za-z0-9_-]{22}$/);
  // Later times sort after earlier ones, across the change from 8 to 9 significant digits too.
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]!.slice(0, 13) < ids[i]!.slice(0, 13), `${ids[i - 1]} < ${ids[i]}`);
  assert.equal(timePart(1_700_000_000_000), (1_700_000_000_000).toString(36).padStart(9, '0'));
  const same = Array.from({ length: 1000 }, () => newTimedId('evt', 1_700_000_000_000));
  assert.equal(new Set(same).size, same.length);
});
