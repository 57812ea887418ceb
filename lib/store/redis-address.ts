import { parseListen } from '../config/config.js';

// Where Redis is, as one string: the compiled config, the actors' init message, `status` and the
// logs all carry a Redis address as a URL, so the three kinds of deployment are three URL forms:
//
//   redis://[user:password@]host:port/db, rediss://…, unix:///path   one server
//   redis+sentinel://[user:password@]host:port,host:port,…/NAME[/db]  the master that these
//                                                                     Sentinels name NAME
//   redis+cluster://[user:password@]host:port,host:port,…            a Redis Cluster (seed nodes)
//
// The user and password are those of the data nodes (a Sentinel itself is asked without one).
// `Redis: {Sentinels: [...], Name}` and `Redis: {Cluster: [...]}` in the config compile into the
// same forms (sentinelUrl, clusterUrl).

export interface RedisNode {
  host: string;
  port: number;
}

export type RedisAddress =
  | { kind: 'server'; url: string }
  | { kind: 'sentinel'; sentinels: RedisNode[]; name: string; db: number; username?: string; password?: string }
  | { kind: 'cluster'; nodes: RedisNode[]; username?: string; password?: string };

export const SENTINEL_SCHEME = 'redis+sentinel://';
export const CLUSTER_SCHEME = 'redis+cluster://';

/** What a Redis address is, or why it is not one (a message to show after its key). */
export function parseRedisAddress(url: string): RedisAddress | { problem: string } {
  const sentinel = url.startsWith(SENTINEL_SCHEME);
  if (!sentinel && !url.startsWith(CLUSTER_SCHEME)) return { kind: 'server', url };
  const rest = url.slice((sentinel ? SENTINEL_SCHEME : CLUSTER_SCHEME).length);
  // The password may hold any character but '@' (encoded as %40): the last '@' ends it.
  const at = rest.lastIndexOf('@');
  const auth = at < 0 ? null : rest.slice(0, at);
  const [hostList, ...path] = rest.slice(at + 1).split('/');
  const nodes = parseNodes(hostList.split(','));
  if (!nodes) return { problem: `${sentinel ? 'Sentinels' : 'cluster nodes'} must be host:port, separated by commas` };
  const credentials = auth === null ? {} : decodeAuth(auth);
  if (!sentinel) {
    if (path.some((part) => part !== '')) return { problem: `a cluster has no database number or name: write ${CLUSTER_SCHEME}host:port,host:port` };
    return { kind: 'cluster', nodes, ...credentials };
  }
  const [name = '', dbText = '0'] = path;
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name)) return { problem: `name the master after the Sentinels: ${SENTINEL_SCHEME}host:port,host:port/mymaster` };
  if (!/^\d{1,5}$/.test(dbText || '0')) return { problem: 'the database number after the master name must be a number' };
  return { kind: 'sentinel', sentinels: nodes, name, db: Number(dbText || 0), ...credentials };
}

/** `host:port` texts as nodes; null when one is not. */
export function parseNodes(texts: string[]): RedisNode[] | null {
  if (texts.length === 0) return null;
  const nodes: RedisNode[] = [];
  for (const text of texts) {
    const node = parseListen(text);
    if (!node || node.port === 0) return null;
    nodes.push(node);
  }
  return nodes;
}

export function sentinelUrl(sentinels: RedisNode[], name: string): string {
  return `${SENTINEL_SCHEME}${sentinels.map(formatNode).join(',')}/${name}`;
}

export function clusterUrl(nodes: RedisNode[]): string {
  return `${CLUSTER_SCHEME}${nodes.map(formatNode).join(',')}`;
}

function formatNode({ host, port }: RedisNode): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function decodeAuth(auth: string): { username?: string; password?: string } {
  const colon = auth.indexOf(':');
  const [user, password] = colon < 0 ? [auth, ''] : [auth.slice(0, colon), auth.slice(colon + 1)];
  return { ...(user ? { username: decodeURIComponent(user) } : {}), ...(password ? { password: decodeURIComponent(password) } : {}) };
}
