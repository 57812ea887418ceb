import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/config.js';
import { Store } from '../store/store.js';
import { JobLogs } from '../logs/job-log.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { WebAuth } from './auth.js';
import { EventHub } from './event-hub.js';
import { FleetView } from './fleet-view.js';
import { JobTally } from './job-tally.js';
import { LiveLists } from './live-lists.js';
import { WebMetrics } from './metrics.js';
import { route, send, type WebContext } from './routes.js';
import { SseStream } from './sse.js';
import { CONTENT_SECURITY_POLICY } from './static.js';
import { messagePage } from './pages.js';

// The web page and /metrics, served by the supervisor (actors/supervisor.ts starts and stops it)
// on Web.Listen. Its Redis connections are its own (one for reads and the cancel and retry
// transitions, one blocked on the Events stream), so a slow page never delays the heartbeat.
//
//   browser ──HTTP──> routes.ts ──> pages.ts / views.ts (HTML, escaped in html.ts)
//           <──SSE─── live-lists.ts, log-stream.ts <── event-hub.ts <── Redis Events
//   Prometheus ──> /metrics: metrics.ts (job-tally.ts, fleet-view.ts)
//
// A port already taken (a second supervisor on this machine) is not fatal: the page listens on
// another free port of the same address and the log says which. Nothing here can stop the
// supervisor from starting: any other failure to listen is logged and the page is off.

const REQUEST_DEADLINE_MS = 10_000;
const CLOSE_DEADLINE_MS = 3000;

export class WebServer {
  private server: Server | null = null;
  private store: Store | null = null;
  private hub: EventHub | null = null;
  private lists: LiveLists | null = null;
  private logs: JobLogs | null = null;
  private metrics: WebMetrics | null = null;
  private readonly streams = new Set<SseStream>();
  private readonly auth: WebAuth;
  private closing: Promise<void> | null = null;
  /** The page's address once it listens (http://host:port/). */
  url: string | null = null;

  constructor(
    private readonly config: Config,
    private readonly redisUrl: string,
    private readonly log: Logger,
  ) {
    this.auth = new WebAuth(config.web);
  }

  /** Listens; returns the page's address, or null when it could not (the reason is logged). */
  async start(): Promise<string | null> {
    const listen = this.config.web.listen;
    if (!listen) return null;
    try {
      const store = (this.store = await Store.open(this.redisUrl, this.config.deployment, 'actor', { node: this.config.nodeName }));
      const hub = (this.hub = new EventHub(store, this.log));
      const fleet = new FleetView(this.config, store);
      const tally = new JobTally(store, this.log);
      this.lists = new LiveLists(this.config, store, fleet, hub, this.auth.csrf, this.log);
      this.metrics = new WebMetrics(store, tally, fleet, () => this.streams.size);
      this.logs = new JobLogs(this.config, store, this.log);
      hub.on('batch', (batch) => this.metrics?.observe(batch));
      await hub.start();
      void tally.refresh();
      const context: WebContext = {
        config: this.config, store, hub, lists: this.lists, logs: this.logs, auth: this.auth, metrics: this.metrics, log: this.log,
        track: (sse) => {
          this.streams.add(sse);
          sse.onClose(() => this.streams.delete(sse));
        },
      };
      this.server = createServer((req, res) => void this.handle(context, req, res));
      const port = await this.listen(listen.host, listen.port).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EADDRINUSE') throw err;
        const other = await this.listen(listen.host, 0);
        this.log.warn(`web: ${formatHost(listen.host)}:${listen.port} is in use (another supervisor on this machine?); the page listens on ${formatHost(listen.host)}:${other} instead`);
        return other;
      });
      this.auth.listening(port);
      const shownHost = listen.host === '0.0.0.0' || listen.host === '::' ? hostname() : listen.host;
      this.url = `http://${formatHost(shownHost)}:${port}/`;
      this.log.info(`web: the page is at ${this.url} (metrics at ${this.url}metrics)${this.auth.needsToken ? '; it needs Web.Token: `jobmanager status` prints a login link' : ''}`);
      return this.url;
    } catch (err) {
      this.log.error(`web: cannot serve the page on ${formatHost(listen.host)}:${listen.port} (${errorMessage(err)}); it is off: fix Web.Listen in the config, or set it to null`);
      await this.close();
      return null;
    }
  }

  /** Counts an actor restart for /metrics. */
  actorRestarted(actor: string): void {
    this.metrics?.actorRestarted(actor);
  }

  private listen(host: string, port: number): Promise<number> {
    const server = this.server!;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  private async handle(context: WebContext, req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    // A login link's code must not leave in a Referer header.
    res.setHeader('Referrer-Policy', 'no-referrer');
    const r = { req, res, url: new URL(req.url ?? '/', 'http://page.invalid') };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), REQUEST_DEADLINE_MS)));
    try {
      const outcome = await Promise.race([route(context, r), deadline]);
      if (outcome === 'late') send(r, 503, 'text/html; charset=utf-8', messagePage('Unavailable', 'Redis did not answer in time; try again in a moment.', this.auth.csrf));
    } catch (err) {
      this.log.warn(`web: ${req.method} ${r.url.pathname}: ${errorMessage(err)}`);
      send(r, 500, 'text/plain; charset=utf-8', 'the page failed; the supervisor log says why\n');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops listening, ends every live stream, closes its connections. Idempotent, bounded. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const steps: (() => Promise<void> | void)[] = [
        () => {
          for (const sse of this.streams) sse.close();
        },
        () => {
          this.lists?.close();
        },
        () =>
          new Promise<void>((resolve) => {
            if (!this.server?.listening) return resolve();
            this.server.close(() => resolve());
            this.server.closeAllConnections();
          }),
        () => this.hub?.close(),
        () => this.logs?.close(),
        () => this.store?.close(),
      ];
      const all = (async () => {
        for (const step of steps) {
          try {
            await step();
          } catch (err) {
            this.log.warn(`web: while closing: ${errorMessage(err)}`);
          }
        }
      })();
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, CLOSE_DEADLINE_MS).unref())]);
    })();
    return this.closing;
  }
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
