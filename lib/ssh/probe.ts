import type { Config } from '../config/config.js';
import { errorMessage } from '../util/errors.js';
import { silentLogger } from '../util/log.js';
import { SshConnection } from './connection.js';
import type { Host } from './hosts.js';

/**
 * Is the host reachable now? A connection of its own (with the host key check the actors use)
 * runs `exit 0`. Returns null when it answered, else why not.
 */
export async function probeHost(host: Host, config: Config, connectTimeoutMs = 5000): Promise<string | null> {
  const connection = new SshConnection(host, { knownHosts: host.knownHosts ?? config.knownHosts, hostKeyPolicy: config.hostKeyPolicy, log: silentLogger, connectTimeoutMs });
  try {
    const result = await connection.exec('exit 0');
    return result.code === 0 ? null : `a test command failed (exit ${result.code})`;
  } catch (err) {
    return errorMessage(err);
  } finally {
    connection.close();
  }
}
