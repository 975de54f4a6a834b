import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_RETRY_SCHEDULE,
  JITTER,
  MAX_RETRY_AFTER_MS,
  nextRetryDelay,
  parseDuration,
  parseRetryAfter,
  parseRetrySchedule,
} from '../../src/domain/retry.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const fixed = (r: number) => () => r;

describe('parseDuration', () => {
  test('every unit', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('5s'), 5 * S);
    assert.equal(parseDuration('5m'), 5 * M);
    assert.equal(parseDuration('2h'), 2 * H);
    assert.equal(parseDuration('1d'), 24 * H);
    assert.equal(parseDuration('0s'), 0);
  });

  test('surrounding whitespace is ignored', () => {
    assert.equal(parseDuration('  30m '), 30 * M);
  });

  test('malformed durations are null', () => {
    for (const bad of ['', '5', 's', '1.5s', '-5s', '5S', '5 s', '5sec', '5w', '1h30m', '1234567890s', '+5s']) {
      assert.equal(parseDuration(bad), null, JSON.stringify(bad));
    }
  });

  test('nine digits is the longest number', () => {
    assert.equal(parseDuration('999999999ms'), 999_999_999);
  });
});

describe('parseRetrySchedule', () => {
  test('the default schedule', () => {
    assert.equal(DEFAULT_RETRY_SCHEDULE, '5s,5m,30m,2h,5h,10h,10h');
    assert.deepEqual(parseRetrySchedule(DEFAULT_RETRY_SCHEDULE), [5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H]);
  });

  test('spaces around entries are allowed', () => {
    assert.deepEqual(parseRetrySchedule(' 1s , 2m,3h '), [S, 2 * M, 3 * H]);
  });

  test('an empty schedule means no retries', () => {
    assert.deepEqual(parseRetrySchedule(''), []);
    assert.deepEqual(parseRetrySchedule('   '), []);
  });

  test('a bad entry throws naming it', () => {
    assert.throws(() => parseRetrySchedule('5s,five,2h'), { message: /HERALD_RETRY_SCHEDULE: "five" is not a duration/ });
    assert.throws(() => parseRetrySchedule('5s,,2h'), { message: /"" is not a duration/ });
    assert.throws(() => parseRetrySchedule('5s,'), /not a duration/);
    assert.throws(() => parseRetrySchedule('5s;5m'), /"5s;5m"/);
  });
});

describe('nextRetryDelay', () => {
  const schedule = parseRetrySchedule(DEFAULT_RETRY_SCHEDULE);

  test('with no jitter (random 0.5) each attempt gets its scheduled delay', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => nextRetryDelay(schedule, n, null, fixed(0.5))),
      [5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H],
    );
  });

  test('null once the schedule is exhausted (8 attempts in all)', () => {
    assert.equal(nextRetryDelay(schedule, 8, null, fixed(0.5)), null);
    assert.equal(nextRetryDelay(schedule, 100, null, fixed(0.5)), null);
    assert.equal(nextRetryDelay([], 1, null, fixed(0.5)), null);
    assert.equal(nextRetryDelay(schedule, 8, 60 * S, fixed(0.5)), null);
  });

  test('jitter is +/- 10%', () => {
    assert.equal(JITTER, 0.1);
    assert.equal(nextRetryDelay(schedule, 1, null, fixed(0)), 4500);
    assert.equal(nextRetryDelay(schedule, 1, null, fixed(0.75)), 5250);
    assert.equal(nextRetryDelay(schedule, 4, null, fixed(0)), 0.9 * 2 * H);
    assert.equal(nextRetryDelay(schedule, 4, null, fixed(0.999999)), Math.round(2 * H * (1 + 0.1 * (2 * 0.999999 - 1))));
  });

  test('jitter stays within bounds for many random draws', () => {
    let seed = 42;
    const lcg = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 1000; i++) {
      const d = nextRetryDelay(schedule, 3, null, lcg);
      assert.ok(d !== null && d >= 0.9 * 30 * M && d <= 1.1 * 30 * M, String(d));
    }
  });

  test('the result is rounded to whole milliseconds', () => {
    assert.equal(nextRetryDelay([1001], 1, null, fixed(0.3)), Math.round(1001 * (1 + 0.1 * -0.4)));
    assert.ok(Number.isInteger(nextRetryDelay([1001], 1, null, fixed(0.3))));
  });

  test('Retry-After is a lower bound', () => {
    assert.equal(nextRetryDelay(schedule, 1, 60 * S, fixed(0.5)), 60 * S);
    assert.equal(nextRetryDelay(schedule, 2, 60 * S, fixed(0.5)), 5 * M);
    assert.equal(nextRetryDelay(schedule, 1, 0, fixed(0)), 4500);
  });

  test('Retry-After is capped at 24h', () => {
    assert.equal(MAX_RETRY_AFTER_MS, 24 * H);
    assert.equal(nextRetryDelay(schedule, 1, 7 * 24 * H, fixed(0.5)), 24 * H);
    assert.equal(nextRetryDelay([30 * H], 1, 48 * H, fixed(0.5)), 30 * H);
  });

  test('uses Math.random by default and stays in bounds', () => {
    const d = nextRetryDelay([10_000], 1, null);
    assert.ok(d !== null && d >= 9000 && d <= 11_000);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-22T10:00:00Z');

  test('absent or empty', () => {
    assert.equal(parseRetryAfter(undefined, now), null);
    assert.equal(parseRetryAfter('', now), null);
  });

  test('delay-seconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 30 ', now), 30_000);
    assert.equal(parseRetryAfter('0', now), 0);
  });

  test('HTTP-date in the future', () => {
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 10:05:00 GMT', now), 5 * M);
  });

  test('HTTP-date in the past gives 0', () => {
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 09:00:00 GMT', now), 0);
  });

  test('garbage is null', () => {
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('5 minutes', now), null);
  });

  test('non-integer or negative seconds are null, not 0', () => {
    assert.equal(parseRetryAfter('1.5', now), null);
    assert.equal(parseRetryAfter('-5', now), null);
  });
});
