import { Queue, Worker, type Processor } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisServer } from '../spec/support/redis-server.js';
import { redisWork, workPerJob, type WorkPerJob } from './redis-work.js';

// The reference queue: BullMQ 5, on a redis-server of the same kind as JobManager's embedded one
// (its own, append-only file on, fsync every second, a unix socket), started for the bench and
// stopped by pid. A queue name per measurement, so that one measurement's jobs never meet another's.

export class BullmqReference {
  private names = 0;
  private client: Redis | null = null;

  private constructor(private readonly server: RedisServer) {}

  /** A connection of the bench's own to the server, for INFO. */
  get redis(): Redis {
    this.client ??= new Redis({ path: this.server.socket });
    return this.client;
  }

  static async start(): Promise<BullmqReference> {
    return new BullmqReference(await RedisServer.start({ appendOnly: true }));
  }

  private get connection(): { path: string } {
    return { path: this.server.socket };
  }

  queue(): Queue {
    return new Queue(`bench${++this.names}`, { connection: this.connection });
  }

  /** One Worker on `queue`, not running until run() is called (autorun off). */
  worker(queue: Queue, processor: Processor, concurrency: number): Worker {
    return new Worker(queue.name, processor, { connection: this.connection, concurrency, autorun: false });
  }

  async stop(): Promise<void> {
    this.client?.disconnect();
    this.client = null;
    await this.server.stop();
  }
}

/** Resolves when `worker` has completed `count` jobs (failures count too, and are reported). */
export function completions(worker: Worker, count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const one = () => {
      if (++done === count) resolve();
    };
    worker.on('completed', one);
    worker.on('failed', (_job, err) => reject(err));
  });
}

/**
 * addBulk of `count` jobs, then one Worker runs them all with `concurrency`: the time of the
 * adds, of the processing, and of both (end to end); and what it cost Redis per job.
 */
export async function timeAddAndProcess(bull: BullmqReference, count: number, concurrency: number, processor: Processor): Promise<{ add: number; process: number; endToEnd: number; redisPerJob: WorkPerJob }> {
  const queue = bull.queue();
  const worker = bull.worker(queue, processor, concurrency);
  try {
    const work = await redisWork(bull.redis);
    const start = process.hrtime.bigint();
    for (let i = 0; i < count; i += 5000) {
      await queue.addBulk(Array.from({ length: Math.min(5000, count - i) }, (_, j) => ({ name: 'job', data: { i: i + j } })));
    }
    const added = process.hrtime.bigint();
    const done = completions(worker, count);
    void worker.run();
    await done;
    const end = process.hrtime.bigint();
    const redisPerJob = workPerJob(work, await redisWork(bull.redis), count);
    return { add: Number(added - start) / 1e9, process: Number(end - added) / 1e9, endToEnd: Number(end - start) / 1e9, redisPerJob };
  } finally {
    await worker.close();
    await queue.close();
  }
}
