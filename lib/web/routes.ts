import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import type { JobLogs } from '../logs/job-log.js';
import type { Logger } from '../util/log.js';
import type { WebAuth } from './auth.js';
import type { EventHub } from './event-hub.js';
import type { LiveLists } from './live-lists.js';
import type { WebMetrics } from './metrics.js';
import { listJobs, NO_FILTER, parseFilter } from './job-filter.js';
import { JobStream } from './log-stream.js';
import { hostsPage, jobPage, jobsPage, loginPage, messagePage } from './pages.js';
import { SseStream } from './sse.js';
import { staticFile } from './static.js';

// What each address of the web page does. Every route but /static and /login needs access
// (auth.ts); every POST that changes a job also passes auth.checkPost (same origin, CSRF token).
//
//   GET  /                    jobs (?state= &name= &host= &sweep= &limit=)
//   GET  /events              live updates of a jobs list (same query), or ?view=hosts
//   GET  /jobs/<id>           one job, its log following live
//   GET  /jobs/<id>/events    its live updates and log
//   POST /jobs/<id>/cancel    cancel-7.lua
//   POST /jobs/<id>/retry     retry-3.lua (failed or cancelled only)
//   GET  /hosts               SSH hosts and EC2 instances
//   GET  /metrics             Prometheus metrics
//   GET  /login?code=…        one-time link from `jobmanager status`: sets the session cookie
//   POST /login               the token pasted in the form: sets the session cookie
//   GET  /static/<file>       CSS and JavaScript

export interface WebContext {
  config: Config;
  store: Store;
  hub: EventHub;
  lists: LiveLists;
  logs: JobLogs;
  auth: WebAuth;
  metrics: WebMetrics;
  log: Logger;
  /** Keeps a Server-Sent Events stream until the server closes. */
  track(sse: SseStream): void;
}

export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
}

const DEFAULT_LIMIT = 200;
const MAX_BODY = 16 * 1024;

export async function route(ctx: WebContext, r: Request): Promise<void> {
  const { req, url } = r;
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (method === 'GET' && path.startsWith('/static/')) return serveStatic(r, path.slice(8));
  const access = ctx.auth.check(req);
  if (!access.ok && access.status === 403) return send(r, 403, 'text/plain; charset=utf-8', `${access.reason}\n`);
  if (path === '/login') return login(ctx, r, method);
  if (!access.ok) {
    if (method === 'GET' && (req.headers.accept ?? '').includes('text/html')) return send(r, 401, 'text/html; charset=utf-8', loginPage(null, ''));
    return send(r, 401, 'text/plain; charset=utf-8', `${access.reason}: send Authorization: Bearer TOKEN, or log in with the link \`jobmanager status\` prints\n`);
  }
  const job = /^\/jobs\/(\d{1,15})(?:\/(events|cancel|retry))?$/.exec(path);
  if (method === 'GET') {
    if (path === '/') return jobsList(ctx, r);
    if (path === '/events') return liveList(ctx, r);
    if (path === '/hosts') return hosts(ctx, r);
    if (path === '/metrics') return send(r, 200, ctx.metrics.contentType, await ctx.metrics.render());
    if (job && !job[2]) return jobView(ctx, r, job[1]);
    if (job && job[2] === 'events') return jobEvents(ctx, r, job[1]);
  } else if (method === 'POST' && job && (job[2] === 'cancel' || job[2] === 'retry')) {
    return jobAction(ctx, r, job[1], job[2]);
  }
  const known = path === '/' || path === '/events' || path === '/hosts' || path === '/metrics' || job !== null;
  if (known) return send(r, 405, 'text/plain; charset=utf-8', `${method} is not allowed here\n`);
  return send(r, 404, 'text/html; charset=utf-8', messagePage('Not found', `There is nothing at ${path}.`, ctx.auth.csrf));
}

function serveStatic(r: Request, name: string): void {
  const file = staticFile(name);
  if (!file) return send(r, 404, 'text/plain; charset=utf-8', 'not found\n');
  r.res.writeHead(200, { 'Content-Type': file.type, 'Cache-Control': 'no-cache' });
  r.res.end(file.body);
}

export function send(r: Request, status: number, type: string, body: string): void {
  if (r.res.headersSent) return;
  r.res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  r.res.end(body);
}

function redirect(r: Request, to: string, cookie?: string): void {
  r.res.writeHead(303, { Location: to, 'Cache-Control': 'no-store', ...(cookie ? { 'Set-Cookie': cookie } : {}) });
  r.res.end();
}

async function login(ctx: WebContext, r: Request, method: string): Promise<void> {
  if (!ctx.auth.needsToken) return redirect(r, '/');
  if (method === 'GET') {
    const code = r.url.searchParams.get('code');
    if (code !== null && ctx.auth.redeemCode(code)) return redirect(r, '/', ctx.auth.newSession());
    return send(r, 401, 'text/html; charset=utf-8', loginPage(code === null ? null : 'That login link has expired or was used already: `jobmanager status` prints a new one.', ''));
  }
  if (method !== 'POST') return send(r, 405, 'text/plain; charset=utf-8', `${method} is not allowed here\n`);
  const site = r.req.headers['sec-fetch-site'];
  if ((site !== undefined && site !== 'same-origin') || (r.req.headers.origin !== undefined && r.req.headers.origin !== `http://${r.req.headers.host}`)) {
    return send(r, 403, 'text/plain; charset=utf-8', 'a login from another site is refused\n');
  }
  const form = await readForm(r.req);
  if (form && ctx.auth.tokenMatches(form.get('token') ?? '')) return redirect(r, '/', ctx.auth.newSession());
  return send(r, 401, 'text/html; charset=utf-8', loginPage('That is not the token.', ''));
}

function limitOf(url: URL): number {
  const limit = Number(url.searchParams.get('limit') ?? DEFAULT_LIMIT);
  return Number.isInteger(limit) && limit > 0 ? Math.min(limit, 5000) : DEFAULT_LIMIT;
}

async function jobsList(ctx: WebContext, r: Request): Promise<void> {
  const parsed = parseFilter(r.url.searchParams);
  const filter = typeof parsed === 'string' ? NO_FILTER : parsed;
  const limit = limitOf(r.url);
  const [listing, locations] = await Promise.all([listJobs(ctx.store, filter, limit), ctx.lists.locationsHtml()]);
  send(r, 200, 'text/html; charset=utf-8', jobsPage({ listing, filter, limit, locations, csrf: ctx.auth.csrf, problem: typeof parsed === 'string' ? parsed : null }));
}

function liveList(ctx: WebContext, r: Request): void {
  if (r.url.searchParams.get('view') === 'hosts') {
    const sse = new SseStream(r.req, r.res);
    ctx.track(sse);
    ctx.lists.addHostsViewer(sse);
    return;
  }
  const parsed = parseFilter(r.url.searchParams);
  if (typeof parsed === 'string') return send(r, 400, 'text/plain; charset=utf-8', `${parsed}\n`);
  const sse = new SseStream(r.req, r.res);
  ctx.track(sse);
  ctx.lists.addJobsViewer(sse, parsed);
}

async function hosts(ctx: WebContext, r: Request): Promise<void> {
  const tables = await ctx.lists.hostsHtml();
  send(r, 200, 'text/html; charset=utf-8', hostsPage(tables.hosts, tables.instances, ctx.auth.csrf));
}

async function jobView(ctx: WebContext, r: Request, id: string): Promise<void> {
  const [job, runs] = await Promise.all([ctx.store.getJob(id), ctx.store.runsOf(id)]);
  if (!job) return send(r, 404, 'text/html; charset=utf-8', messagePage('No such job', `There is no job ${id}.`, ctx.auth.csrf));
  send(r, 200, 'text/html; charset=utf-8', jobPage(job, runs, ctx.auth.csrf));
}

async function jobEvents(ctx: WebContext, r: Request, id: string): Promise<void> {
  const sse = new SseStream(r.req, r.res);
  ctx.track(sse);
  await new JobStream(id, sse, ctx.store, ctx.logs, ctx.hub, ctx.auth.csrf, ctx.log).start();
}

async function jobAction(ctx: WebContext, r: Request, id: string, verb: 'cancel' | 'retry'): Promise<void> {
  const form = await readForm(r.req);
  const refused = ctx.auth.checkPost(r.req, form?.get('csrf') ?? null);
  const wantsJson = (r.req.headers.accept ?? '').includes('application/json');
  const answer = (status: number, text: string) => {
    if (wantsJson || status >= 400) send(r, status, wantsJson ? 'application/json' : 'text/plain; charset=utf-8', wantsJson ? JSON.stringify(status < 400 ? { id, result: text } : { id, error: text }) : `${text}\n`);
    else redirect(r, safeNext(form?.get('next')));
  };
  if (refused) return answer(403, refused);
  const [result] = verb === 'cancel' ? await ctx.store.cancel([id]) : await ctx.store.retry([id]);
  if (result === 'unknown') return answer(404, `there is no job ${id}`);
  const done = verb === 'cancel' ? result === 'cancelled' || result === 'cancelling' : result === 'queued';
  if (!done) {
    return answer(409, verb === 'cancel' ? `job ${id} has already ended (${result})` : `only a failed or cancelled job can be retried; job ${id} is ${result}`);
  }
  ctx.log.info(`web: job ${id}: ${verb === 'cancel' ? `cancel requested (${result})` : 'retried by hand: queued again'}`);
  answer(200, result);
}

/** Where a form sends the browser back to: a path of this site only. */
function safeNext(next: string | null | undefined): string {
  return next && /^\/(?!\/)[\w\-/.?=&%]*$/.test(next) ? next : '/';
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) return null;
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > MAX_BODY) return null;
  }
  return new URLSearchParams(body);
}
