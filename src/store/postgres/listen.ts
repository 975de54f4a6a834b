import pg from 'pg';

/** The NOTIFY payload of a hint whose publishes left a fan-out to queue (Store.expandFanOut). */
export const FAN_OUT_HINT = 'fanout';

/** Reconnect delays grow 250 ms, 500 ms, 1 s, … up to this, with jitter. */
const MAX_BACKOFF_MS = 30_000;

/**
 * LISTEN on a dedicated connection (a pooled one would be handed to other queries and lose
 * the subscription). A notification is only a latency hint: the dispatcher keeps polling as
 * the backstop. Notifications sent while the connection is down are lost, so `onWork` is
 * also called once after every (re)connect (as if a fan-out were waiting: one could have been
 * announced meanwhile), and the listener reconnects with backoff for as
 * long as it is open. Resolves once the first attempt has connected or failed (a failure
 * keeps retrying in the background; polling covers the gap).
 */
export async function listen(connectionString: string, channel: string, onWork: (fanOut: boolean) => void): Promise<() => Promise<void>> {
  let closed = false;
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  let failures = 0;
  let pending: Promise<void> = Promise.resolve();

  const connect = async (): Promise<void> => {
    timer = null;
    if (closed) return;
    // keepAlive: a connection that died silently (a network partition) must error, or the
    // listener would wait on it for ever.
    const c = new pg.Client({ connectionString, keepAlive: true, connectionTimeoutMillis: 10_000 });
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      if (client === c) client = null;
      c.end().catch(() => undefined);
      if (!closed) retry();
    };
    c.on('error', onLost);
    c.on('end', onLost);
    c.on('notification', (n) => {
      if (n.channel === channel) onWork(n.payload === FAN_OUT_HINT);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch {
      onLost();
      return;
    }
    if (lost) return;
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    failures = 0;
    onWork(true);
  };

  const retry = () => {
    if (timer || closed) return;
    const delay = Math.min(250 * 2 ** failures++, MAX_BACKOFF_MS);
    timer = setTimeout(() => void (pending = connect()), delay * (0.8 + Math.random() * 0.4));
    timer.unref();
  };

  await (pending = connect());
  return async () => {
    closed = true;
    if (timer) clearTimeout(timer);
    timer = null;
    await pending;
    const c = client;
    client = null;
    await c?.end().catch(() => undefined);
  };
}
