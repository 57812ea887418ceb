import type { Redis } from 'ioredis';

// What a run of jobs costs the redis-server that holds them: its CPU (INFO cpu, user and
// system) and the commands it ran (INFO stats; a Lua script's own calls count, as the server
// counts them), read before and after and divided by the jobs. It tells the part of a gap to
// a reference that is Redis's from the part that is the clients'.

export interface RedisWork {
  cpuSeconds: number;
  commands: number;
}

export async function redisWork(redis: Redis): Promise<RedisWork> {
  const info = await redis.info();
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return { cpuSeconds: field('used_cpu_user') + field('used_cpu_sys'), commands: field('total_commands_processed') };
}

/** Per job, between two readings: CPU in microseconds, and commands. */
export interface WorkPerJob {
  cpuMicros: number;
  commands: number;
}

export function workPerJob(before: RedisWork, after: RedisWork, jobs: number): WorkPerJob {
  return { cpuMicros: ((after.cpuSeconds - before.cpuSeconds) / jobs) * 1e6, commands: (after.commands - before.commands) / jobs };
}
