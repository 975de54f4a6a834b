import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newId, newTimedId, nextTick } from '../../src/domain/ids.js';

test('ids are the prefix and 16 random bytes in base64url, never repeated across entropy refills', () => {
  const ids = Array.from({ length: 10_000 }, () => newId('dlv')); // 160,000 bytes: about 39 refills of 4 KiB
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^dlv_[A-Za-z0-9_-]{22}$/);
  // Each id's bytes are its own: no two share a 16-byte block, even in part at a fixed offset.
  const heads = new Set(ids.map((id) => id.slice(4, 12)));
  assert.equal(heads.size, ids.length);
});

test('timed ids sort by their time as plain strings, and keep 16 random bytes', () => {
  const times = [0, 1, 35, 36, 1_700_000_000_000, 1_799_999_999_999, 2_821_109_907_455, 2_821_109_907_456, 7_000_000_000_000];
  const ids = times.map((t) => newTimedId('dlv', t));
  for (const id of ids) assert.match(id, /^dlv_[0-9a-z]{11}[A-Za-z0-9_-]{22}$/);
  // Later times sort after earlier ones, across changes in the number of significant digits too.
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]!.slice(0, 15) < ids[i]!.slice(0, 15), `${ids[i - 1]} < ${ids[i]}`);
});

test('timed ids made in one millisecond, or with a clock that went back, still increase', () => {
  const at = 8_000_000_000_000; // later than every tick so far, so the first is the time itself
  assert.equal(nextTick(at), (at * 1000).toString(36).padStart(11, '0'));
  // A fan-out's deliveries share one `now`: their ids must follow in the order they were made
  // (claims take them in that order, so their attempts are appended to delivery_attempts_once).
  const same = Array.from({ length: 5000 }, () => newTimedId('dlv', at));
  for (let i = 1; i < same.length; i++) assert.ok(same[i - 1]! < same[i]!, `${same[i - 1]} < ${same[i]}`);
  assert.equal(new Set(same.map((id) => id.slice(4, 15))).size, same.length);
  // 5,000 ids in one millisecond ran the ticks 5 ms ahead; a millisecond later they go on from there.
  const next = newTimedId('evt', at + 1);
  assert.ok(next.slice(4, 15) > same.at(-1)!.slice(4, 15));
  const back = newTimedId('dlv', at - 60_000);
  assert.ok(back.slice(4, 15) > next.slice(4, 15), 'an earlier clock does not make an earlier id');
  // A clock that is not a number is taken as the real one, and the count goes on.
  const afterNaN = [newTimedId('dlv', Number.NaN), newTimedId('dlv', Number.NaN)];
  for (const id of afterNaN) assert.match(id, /^dlv_[0-9a-z]{11}[A-Za-z0-9_-]{22}$/);
  assert.ok(back.slice(4, 15) < afterNaN[0]!.slice(4, 15) && afterNaN[0]!.slice(4, 15) < afterNaN[1]!.slice(4, 15));
  // A clock past the year 2255 is held there: ticks stay exact integers and still increase.
  const far = [newTimedId('dlv', 1e17), newTimedId('dlv', 1e17), newTimedId('dlv', 1e18)];
  assert.ok(far[0]!.slice(4, 15) < far[1]!.slice(4, 15) && far[1]!.slice(4, 15) < far[2]!.slice(4, 15));
});
