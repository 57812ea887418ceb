import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { FAST_CONFIG, Workspace } from './support/workspace.js';
import { Browser, chromiumPath, screenshotDir } from './support/browser.js';
import { SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import { defaultNodeName } from '../lib/nodes/node-name.js';
import { removeDir } from './support/temp.js';

// The web page and /metrics of a real supervisor, in headless Chromium: jobs appear and change
// without a reload, a running job's log follows live (local, and over SSH for a Remote job),
// cancel and retry work from the page; a POST from another site, a request without the token,
// a Host header naming another site are refused; a second supervisor whose port is taken
// serves its page on another one.

const METRIC_NAMES = [
  'jobmanager_jobs', 'jobmanager_queue_length', 'jobmanager_queue_depth', 'jobmanager_slots_used', 'jobmanager_slots_total',
  'jobmanager_job_queue_to_start_seconds', 'jobmanager_job_run_seconds', 'jobmanager_actor_restarts_total', 'jobmanager_hosts_down',
  'jobmanager_ec2_instances', 'jobmanager_redis_roundtrip_seconds',
];
const TOKEN = 'spec-web-token-0123456789abcdef';

interface Status {
  supervisor: { web: { url: string; token: boolean } | null } | null;
}

async function webUrl(ws: Workspace): Promise<string> {
  const status = await ws.cli('status', '--json');
  const url = (JSON.parse(status.stdout) as Status).supervisor?.web?.url;
  if (!url) throw new Error(`status --json names no web page:\n${status.stdout}${status.stderr}`);
  return url;
}

async function queue(ws: Workspace, file: string): Promise<string> {
  const queued = await ws.cli('queue', file);
  expect(queued.code, queued.stderr).to.equal(0);
  return Workspace.ids(queued.stdout)[0];
}

async function jobState(ws: Workspace, id: string): Promise<string> {
  return (JSON.parse((await ws.cli('show', id, '--json')).stdout) as { state: string }).state;
}

/** A plain HTTP request (no browser), with any headers, Host included. */
function fetchRaw(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The page's live stream is connected (the header's dot): what happens next is sent to it. */
async function live(page: Page): Promise<void> {
  await page.locator('#live.on').waitFor();
}

(chromiumPath() ? describe : describe.skip)('the web page in a real browser', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let browser: Browser;
  let base: string;
  let shots: string;
  let host: SshHost | null = null;
  let evil: Server | null = null;

  before(async function () {
    shots = screenshotDir();
    host = SshHost.available() ? await SshHost.start({ index: 2 }) : null;
    ws = await Workspace.create();
    const hosts = host ? { KnownHosts: ws.write('known_hosts', `${host.knownHostsLine}\n`), Hosts: [host.hostEntry(2)] } : {};
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `w${basename(ws.dir).slice(-6)}`, ...hosts, Web: { Listen: '127.0.0.1:0' } });
    await ws.startSupervisor();
    base = await webUrl(ws);
    browser = await Browser.launch();
  });

  after(async function () {
    await browser?.close();
    evil?.close();
    await ws?.dispose();
    await host?.stop();
    if (!process.env.JM_SCREENSHOTS && shots) removeDir(shots);
  });

  it('shows jobs queued from the command line without a reload, and filters them by state, name, host and sweep', async function () {
    const page = await browser.page();
    await page.goto(base);
    await live(page);
    const sweep = await Promise.all([0, 1, 2].map((i) => queue(ws, ws.write(`sweep/align[${i}].yaml`, `Name: "align[${i}]"\nOrder: [{Run: "echo aligned ${i}; sleep 0.${i + 3}"}]\n`))));
    const broken = await queue(ws, ws.write('broken.yaml', 'Order: [{Run: "echo no input >&2; exit 3"}]\n'));
    for (const id of sweep) await page.locator(`#job-${id} .state`, { hasText: 'succeeded' }).waitFor();
    await page.locator(`#job-${broken} .state`, { hasText: 'failed' }).waitFor();
    expect(await page.locator(`#job-${sweep[2]} td.name`).textContent()).to.equal('align[2]');

    const shown = async (query: string) => {
      await page.goto(`${base}?${query}`);
      return page.locator('#jobs tbody tr').evaluateAll((rows) => rows.map((row) => (row as HTMLElement).dataset.id));
    };
    expect(await shown('sweep=align')).to.deep.equal([...sweep].sort((a, b) => Number(b) - Number(a)));
    expect(await shown('state=failed')).to.deep.equal([broken]);
    expect(await shown('name=BROK&host=local')).to.deep.equal([broken]);
    expect(await shown('sweep=align&state=failed')).to.deep.equal([]);
    expect(await shown('host=host9')).to.deep.equal([]);
    await page.close();
  });

  it('follows a running job\'s log live, and cancels it and runs it again from its page', async function () {
    const go = join(ws.dir, 'GO');
    const id = await queue(ws, ws.write('follow.yaml', `Name: "follow <b>me</b>"\nOrder:\n  - {Run: "echo first line; while [ ! -e ${go} ]; do sleep 0.05; done; echo second line; sleep 120"}\n  - {Run: "echo never"}\n`));
    const page = await browser.page();
    await page.goto(`${base}jobs/${id}`);
    await live(page);
    await page.locator('#log', { hasText: 'first line' }).waitFor();
    expect(await page.locator('#job h1 .name').textContent(), 'the name is text, not markup').to.equal('follow <b>me</b>');
    const printedAt = Date.now();
    ws.write('GO', '');
    await page.locator('#log', { hasText: 'second line' }).waitFor();
    process.stderr.write(`      (the log line was on the page ${Date.now() - printedAt} ms after the job could print it)\n`);
    expect(existsSync(go)).to.equal(true);
    await page.locator('#job .state', { hasText: 'running' }).first().waitFor();
    await page.screenshot({ path: join(shots, 'job.png'), fullPage: true });

    await page.locator('#job button.cancel').click();
    await page.locator('#job h1 .state', { hasText: 'cancelled' }).waitFor();
    expect(await jobState(ws, id)).to.equal('cancelled');
    await page.locator('#log-state', { hasText: 'complete' }).waitFor();

    await page.goto(`${base}jobs/${id}`);
    await page.locator('#job button.retry').click();
    await page.locator('#job h1 .state', { hasText: 'running' }).waitFor();
    const shown = JSON.parse((await ws.cli('show', id, '--json')).stdout) as { attempt: number; runs: { outcome: string }[] };
    expect(shown.attempt).to.equal(1);
    expect(shown.runs.map((r) => r.outcome)).to.deep.equal(['cancelled']);
    await page.locator('#job button.cancel').click();
    await page.locator('#job h1 .state', { hasText: 'cancelled' }).waitFor();

    await page.goto(base);
    await page.screenshot({ path: join(shots, 'jobs.png'), fullPage: true });
    await page.close();
  });

  it('refuses a POST from another site, and one without the page\'s CSRF token', async function () {
    const id = await queue(ws, ws.write('target.yaml', 'Order: [{Run: "sleep 120"}]\n'));
    await waitFor('the job to run', async () => (await jobState(ws, id)) === 'running');
    // A page on another origin (another port of the same address) that posts a cancel form.
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<form id="f" method="post" action="${base}jobs/${id}/cancel"><input name="csrf" value="guessed"></form><script>document.getElementById('f').submit()</script>`);
    });
    await new Promise<void>((resolve) => evil!.listen(0, '127.0.0.1', resolve));
    const page = await browser.page();
    const posted = page.waitForResponse((r) => r.url().endsWith(`/jobs/${id}/cancel`));
    await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
    expect((await posted).status()).to.equal(403);

    // With the right token but another Origin; with the right Origin but no token.
    const csrf = /name="jm-csrf" content="([^"]+)"/.exec((await fetchRaw(base)).body)![1];
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const otherOrigin = await fetchRaw(`${base}jobs/${id}/cancel`, { method: 'POST', headers: { ...form, Origin: 'http://evil.example' }, body: `csrf=${csrf}` });
    expect(otherOrigin.status).to.equal(403);
    const noToken = await fetchRaw(`${base}jobs/${id}/cancel`, { method: 'POST', headers: { ...form, Origin: base.replace(/\/$/, '') }, body: '' });
    expect(noToken.status).to.equal(403);
    // A page of another site that reached this server by name (DNS rebinding) gets nothing.
    expect((await fetchRaw(base, { headers: { Host: `evil.example:${new URL(base).port}` } })).status).to.equal(403);
    expect(await jobState(ws, id)).to.equal('running');

    const allowed = await fetchRaw(`${base}jobs/${id}/cancel`, { method: 'POST', headers: { ...form, Origin: base.replace(/\/$/, ''), Accept: 'application/json' }, body: `csrf=${csrf}` });
    expect([allowed.status, JSON.parse(allowed.body)]).to.deep.equal([200, { id, result: 'cancelling' }]);
    await waitFor('the job to be cancelled', async () => (await jobState(ws, id)) === 'cancelled');
    await page.close();
  });

  it('follows the log of a Remote job over SSH, from before it has a host', async function () {
    if (!host) this.skip();
    const id = await queue(ws, ws.write('remote.yaml', `ClassType: Remote\nHostname: ${host!.name}\nOrder: [{Run: "echo remote one; sleep 1; echo remote two"}]\n`));
    const page = await browser.page();
    await page.goto(`${base}jobs/${id}`);
    await page.locator('#log', { hasText: 'remote two' }).waitFor();
    await page.locator('#log-state', { hasText: 'complete (the job succeeded)' }).waitFor();
    expect(await page.locator('#log').textContent()).to.equal('remote one\nremote two\n');
    await page.goto(`${base}hosts`);
    await page.locator('#hosts', { hasText: 'yes' }).waitFor(); // the probe found it reachable
    await page.screenshot({ path: join(shots, 'hosts.png'), fullPage: true });
    await page.close();
  });

  it('serves Prometheus metrics at /metrics', async function () {
    const metrics = await fetchRaw(`${base}metrics`);
    expect(metrics.status).to.equal(200);
    expect(metrics.headers['content-type']).to.match(/^text\/plain/);
    for (const name of METRIC_NAMES) expect(metrics.body, name).to.match(new RegExp(`^# TYPE ${name} `, 'm'));
    expect(metrics.body).to.match(/^jobmanager_jobs\{state="cancelled",class="Local"\} [1-9]/m);
    expect(metrics.body).to.include(`\njobmanager_slots_total{location="local:${defaultNodeName()}"} 4\n`);
    // Jobs queued after the page's first count are counted from the Events stream alone: a
    // sweep's jobs (one entry for the batch) by the class of its first, their runs' times from
    // the rows of those that ended.
    ws.write('tally.mjs', 'export function noop() { return 1; }\n');
    const sweep = await ws.cli('queue', ws.write('tally.yaml', 'Name: tally\nClassType: Thread\nModules: {m: tally.mjs}\nEach: {N: [1, 2, 3]}\nOrder: [{Function: noop, Module: m}]\n'));
    expect(sweep.code, sweep.stderr).to.equal(0);
    await waitFor('the sweep\'s three jobs counted as succeeded Thread jobs, with their run times', async () => {
      const body = (await fetchRaw(`${base}metrics`)).body;
      return /^jobmanager_jobs\{state="succeeded",class="Thread"\} 3$/m.test(body) && /^jobmanager_job_run_seconds_count\{class="Thread",outcome="succeeded"\} 3$/m.test(body);
    });
    if (process.env.JM_SCREENSHOTS) process.stderr.write(metrics.body.split('\n').filter((l) => l.startsWith('jobmanager_') && !l.includes('_bucket')).join('\n') + '\n');
  });
});

(chromiumPath() ? describe : describe.skip)('the web page with Web.Token', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let browser: Browser;
  let base: string;
  let shots: string;

  before(async function () {
    shots = screenshotDir();
    ws = await Workspace.create({ config: { ...FAST_CONFIG, Web: { Listen: '127.0.0.1:0', Token: TOKEN } } });
    await ws.startSupervisor();
    base = await webUrl(ws);
    browser = await Browser.launch();
  });

  after(async function () {
    await browser?.close();
    await ws?.dispose();
    if (!process.env.JM_SCREENSHOTS && shots) removeDir(shots);
  });

  it('refuses every request without the token, takes it as a bearer token', async function () {
    for (const path of ['', 'metrics', 'events', 'hosts', 'jobs/1']) {
      expect((await fetchRaw(`${base}${path}`)).status, path).to.equal(401);
      expect((await fetchRaw(`${base}${path}`, { headers: { Authorization: 'Bearer not-the-token-at-all' } })).status, path).to.equal(401);
    }
    expect((await fetchRaw(`${base}jobs/1/cancel`, { method: 'POST' })).status).to.equal(401);
    const metrics = await fetchRaw(`${base}metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(metrics.status).to.equal(200);
    expect(metrics.body).to.contain('jobmanager_jobs');
  });

  it('takes the token pasted in the login form, from the page itself only', async function () {
    const origin = base.replace(/\/$/, '');
    const form = { 'Content-Type': 'application/x-www-form-urlencoded', Origin: origin };
    const ok = await fetchRaw(`${base}login`, { method: 'POST', headers: form, body: `token=${TOKEN}` });
    expect(ok.status).to.equal(303);
    expect(String(ok.headers['set-cookie'])).to.match(/^jm_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    expect((await fetchRaw(base, { headers: { Cookie: String(ok.headers['set-cookie']).split(';')[0] } })).status).to.equal(200);
    expect((await fetchRaw(`${base}login`, { method: 'POST', headers: form, body: 'token=wrong-token-0123456789' })).status).to.equal(401);
    expect((await fetchRaw(`${base}login`, { method: 'POST', headers: { ...form, Origin: 'http://evil.example' }, body: `token=${TOKEN}` })).status).to.equal(403);
  });

  it('logs a browser in with the one-time link that status prints, and shows the token nowhere', async function () {
    const page = await browser.page();
    await page.goto(base);
    await page.locator('input[name="token"]').waitFor();
    await page.screenshot({ path: join(shots, 'login.png') });

    const status = await ws.cli('status');
    const link = /(http:\/\/\S+\/login\?code=\S+?)\)?$/m.exec(status.stdout)?.[1];
    expect(link, status.stdout).to.be.a('string');
    await page.goto(link!);
    expect(new URL(page.url()).pathname).to.equal('/');
    await page.locator('#jobs').waitFor();
    const [cookie] = await browser.context.cookies(base);
    expect(cookie).to.include({ name: 'jm_session', httpOnly: true, sameSite: 'Strict' });
    expect(cookie.value).not.to.contain(TOKEN);

    const again = await fetchRaw(link!);
    expect(again.status, 'the link works once').to.equal(401);
    const json = await ws.cli('status', '--json');
    for (const text of [json.stdout, await page.content(), (await fetchRaw(`${base}metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).body, readFileSync(join(ws.stateDir, 'supervisor.log'), 'utf8')]) {
      expect(text).not.to.contain(TOKEN);
    }
    expect((JSON.parse(json.stdout) as Status).supervisor!.web).to.deep.equal({ url: base, token: true });
    await page.close();
  });
});

describe('two supervisors on one machine', function () {
  this.timeout(120_000);
  let first: Workspace;
  let second: Workspace;

  after(async function () {
    await first?.dispose();
    await second?.dispose();
  });

  it('gives the second one another port when the first holds the configured one, with a warning', async function () {
    first = await Workspace.create({ config: { ...FAST_CONFIG, Web: { Listen: '127.0.0.1:0' } } });
    await first.startSupervisor();
    const taken = new URL(await webUrl(first));
    second = await Workspace.create({ config: { ...FAST_CONFIG, Web: { Listen: `127.0.0.1:${taken.port}` } } });
    await second.startSupervisor();
    const other = new URL(await webUrl(second));
    expect(other.port).not.to.equal(taken.port);
    expect(second.supervisor!.log).to.contain(`web: 127.0.0.1:${taken.port} is in use (another supervisor on this machine?); the page listens on 127.0.0.1:${other.port} instead`);
    expect((await second.cli('status')).stdout).to.contain(`web         ${other.href}`);
    expect((await fetchRaw(other.href)).status).to.equal(200);
    expect((await fetchRaw(taken.href)).status).to.equal(200);
  });
});
