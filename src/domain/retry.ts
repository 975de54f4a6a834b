/**
 * The retry schedule: delays between attempts (`5s,5m,30m,2h,5h,10h,10h`, the default, gives
 * eight attempts over about 27.6 hours, like Svix). Pure: the caller passes the random
 * source, so tests are deterministic.
 */
export const DEFAULT_RETRY_SCHEDULE = '5s,5m,30m,2h,5h,10h,10h';

/** Jitter spreads retries of many deliveries that failed together: +/- 10% of each delay. */
export const JITTER = 0.1;
/** A Retry-After longer than this is capped, so one header cannot park a delivery for ever. */
export const MAX_RETRY_AFTER_MS = 24 * 3600_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `5s`, `5m`, `2h`, `1d` -> milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text.trim());
  if (!m?.[1] || !m[2]) return null;
  return Number(m[1]) * (UNITS[m[2]] ?? 0);
}

/** Parses `5s,5m,...`; throws naming the bad entry. An empty string means "no retries". */
export function parseRetrySchedule(text: string): number[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const ms = parseDuration(part);
    if (ms === null) throw new Error(`HERALD_RETRY_SCHEDULE: "${part.trim()}" is not a duration like 5s, 5m, 2h or 1d`);
    return ms;
  });
}

/**
 * `Retry-After` (RFC 9110): delay-seconds or an HTTP-date. Returns milliseconds from `now`,
 * or null when absent or unparseable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`): Date.parse alone accepts "1.5" or "-5".
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) return null;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * After the `attemptsMade`-th failed attempt: the delay before the next one, or null when
 * the schedule is exhausted (the delivery fails). Retry-After, when given, is honoured as a
 * lower bound (capped at MAX_RETRY_AFTER_MS).
 */
export function nextRetryDelay(
  schedule: readonly number[],
  attemptsMade: number,
  retryAfterMs: number | null,
  random: () => number = Math.random,
): number | null {
  const base = schedule[attemptsMade - 1];
  if (base === undefined) return null;
  const jittered = Math.round(base * (1 + JITTER * (2 * random() - 1)));
  return retryAfterMs === null ? jittered : Math.max(jittered, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
}
