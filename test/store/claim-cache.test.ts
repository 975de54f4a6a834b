import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bounded, ClaimCache } from '../../src/store/sqlite/claim-cache.js';

test('a Bounded map forgets its oldest entries past its size or its weight', () => {
  const m = new Bounded<string>(3, 10);
  m.set('a', 'A', 2);
  m.set('b', 'B', 2);
  m.set('c', 'C', 2);
  m.set('d', 'D', 2); // a fourth: the oldest goes
  assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => m.get(k)), [undefined, 'B', 'C', 'D']);
  m.set('e', 'E', 7); // weight 2 + 2 + 7 > 10: b and c go
  assert.deepEqual(['b', 'c', 'd', 'e'].map((k) => m.get(k)), [undefined, undefined, 'D', 'E']);
  m.set('d', 'D2', 1); // set again: its old weight leaves with it, and it is now the newest
  assert.equal(m.size, 2);
  m.set('big', 'X', 11); // heavier than the whole: kept by nobody
  assert.equal(m.get('big'), undefined);
  assert.equal(m.size, 0);
});

test('a ClaimCache drops the configuration rows when config_version moved, never the events', () => {
  const c = new ClaimCache().at(1);
  c.roles.set('co\0admin', null);
  c.events.set('evt_1', { id: 'evt_1' } as never, 10);
  assert.equal(c.at(1).roles.has('co\0admin'), true);
  assert.equal(c.at(2).roles.has('co\0admin'), false);
  assert.equal(c.events.get('evt_1')?.id, 'evt_1');
});
