import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ReceiverMessage, ReceiverOptions, ReceiverReply } from './receiver-process.js';
import { forkListening } from './util.js';

const ENTRY = fileURLToPath(new URL('./receiver-process.ts', import.meta.url));

export type ReceiverCounts = Omit<Extract<ReceiverReply, { type: 'count' }>, 'type'>;

/** A receiver in its own process: by default the shared one, on one free port. */
export class Receiver {
  private constructor(
    private readonly child: ChildProcess,
    /** One URL per port, in the order asked for. */
    readonly urls: string[],
    /** Date.now() when every port was listening. */
    readonly listeningAt: number,
  ) {}

  /**
   * `ports`: listen on these (0: any free port); several make several receiver origins.
   * `hang`: indexes of ports that read each request and never answer.
   */
  static async start(opts: Partial<ReceiverOptions> = {}): Promise<Receiver> {
    const options: ReceiverOptions = { ports: opts.ports ?? [0], hang: opts.hang ?? [] };
    const { child, listening } = await forkListening<Extract<ReceiverReply, { type: 'listening' }>>(ENTRY, options, 'receiver');
    return new Receiver(child, listening.urls, listening.at);
  }

  /** The first port's URL (the only one of the shared receiver). */
  get url(): string {
    return this.urls[0]!;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Requests answered since the last reset; `reset` starts the count again. */
  async count(reset = false): Promise<number> {
    return (await this.counts(reset)).received;
  }

  /** Every count: per port, held by hanging ports, and when the first request came. */
  counts(reset = false): Promise<ReceiverCounts> {
    return new Promise((resolve) => {
      const onMessage = (m: ReceiverReply) => {
        if (m.type !== 'count') return;
        this.child.off('message', onMessage);
        const { type: _, ...counts } = m;
        resolve(counts);
      };
      this.child.on('message', onMessage);
      this.child.send({ type: 'count', reset } satisfies ReceiverMessage);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || !this.child.connected) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
}
