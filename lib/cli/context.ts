import { loadConfig, type Config } from '../config/config.js';
import { Store } from '../store/store.js';
import { ensureEmbeddedRedis, stopEmbeddedRedis } from '../store/embedded-redis.js';
import { lockOwner } from '../util/state-lock.js';
import type { ConnectionRole } from '../store/connect.js';

// What a command needs: the config, and a connection to the deployment's Redis. With the embedded
// default and no supervisor running, a command starts the embedded redis-server for itself and
// shuts it down again when it is done (unless something else uses it), so reading the job list
// never leaves a stray server behind.

export interface StoreHandle {
  store: Store;
  release(): Promise<void>;
}

export function readConfig(file: string | undefined): Config {
  return loadConfig({ file: file ?? null });
}

export async function openStore(config: Config, role: ConnectionRole = 'cli', onProgress?: (text: string) => void): Promise<StoreHandle> {
  if (config.redisUrl) {
    const store = await Store.open(config.redisUrl, config.deployment, role, { node: config.nodeName });
    return { store, release: () => store.close() };
  }
  const embedded = await ensureEmbeddedRedis(config.stateDir, onProgress);
  const store = await Store.open(embedded.url, config.deployment, role, { node: config.nodeName });
  return {
    store,
    release: async () => {
      await store.close();
      if (embedded.started && lockOwner(config.stateDir) === null) await stopEmbeddedRedis(config.stateDir);
    },
  };
}
