import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StalledSends } from '../src/delivery/stalled.js';

const MiB = 1024 * 1024;

test('stalled sends are let off the concurrency oldest first, within their count and their bytes', () => {
  const stalled = new StalledSends(3, 10 * MiB, 1000);
  stalled.started(1, 0, 4 * MiB);
  stalled.started(2, 10, 4 * MiB);
  stalled.started(3, 20, 4 * MiB); // would take the bytes past 10 MiB
  stalled.started(4, 30, 1 * MiB); // a smaller one still fits
  stalled.started(5, 900, 1);
  stalled.sweep(999);
  assert.deepEqual([stalled.count, stalled.bytes], [0, 0], 'none has run for a second yet');
  stalled.sweep(1500);
  assert.deepEqual([stalled.count, stalled.bytes], [3, 9 * MiB], 'sends 1, 2 and 4: send 3 does not fit, send 5 is young');
  stalled.sweep(2000);
  assert.deepEqual([stalled.count, stalled.bytes], [3, 9 * MiB], 'the count is full: send 5 waits');
  stalled.ended(2);
  stalled.sweep(2000);
  assert.deepEqual([stalled.count, stalled.bytes], [3, 9 * MiB], 'send 3 fits now, before the younger send 5');
  stalled.ended(5); // ends before being let off: nothing to give back
  stalled.ended(1);
  stalled.ended(3);
  stalled.ended(4);
  assert.deepEqual([stalled.count, stalled.bytes], [0, 0]);
});

test('an event larger than the budget is never let off; it keeps its slot until it ends', () => {
  const stalled = new StalledSends(100, 8 * MiB, 1000);
  stalled.started(1, 0, 9 * MiB);
  stalled.sweep(5000);
  assert.deepEqual([stalled.count, stalled.bytes], [0, 0]);
  stalled.ended(1);
  assert.deepEqual([stalled.count, stalled.bytes], [0, 0]);
});
