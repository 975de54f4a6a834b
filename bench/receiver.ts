import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ReceiverMessage, ReceiverReply } from './receiver-process.js';

const ENTRY = fileURLToPath(new URL('./receiver-process.ts', import.meta.url));

/** The shared receiver, in its own process. */
export class Receiver {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(): Promise<Receiver> {
    const child = fork(ENTRY, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const url = await new Promise<string>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
      child.on('message', (m: ReceiverReply) => m.type === 'listening' && resolve(m.url));
    });
    child.removeAllListeners('exit');
    return new Receiver(child, url);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Requests received since the last reset; `reset` starts the count again. */
  count(reset = false): Promise<number> {
    return new Promise((resolve) => {
      const onMessage = (m: ReceiverReply) => {
        if (m.type !== 'count') return;
        this.child.off('message', onMessage);
        resolve(m.received);
      };
      this.child.on('message', onMessage);
      this.child.send({ type: 'count', reset } satisfies ReceiverMessage);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
}
