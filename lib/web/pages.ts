import { JOB_STATES, type JobRecord, type RunEntry } from '../store/job-record.js';
import { html, page, type Html } from './html.js';
import type { JobFilter, Listing } from './job-filter.js';
import { jobDetail, jobRow } from './views.js';

// Whole pages. Each works without JavaScript (links, forms); its script (static/*.js) adds the
// live updates over Server-Sent Events.

export function jobsPage(o: { listing: Listing; filter: JobFilter; limit: number; locations: Html; csrf: string; problem: string | null }): string {
  const f = o.filter;
  const field = (name: keyof JobFilter, label: string, hint: string) =>
    html`<label>${label} <input type="search" name="${name}" value="${f[name] ?? ''}" placeholder="${hint}"></label>`;
  const { jobs, scanned, complete } = o.listing;
  const note = complete
    ? html`${jobs.length} job${jobs.length === 1 ? '' : 's'}`
    : html`the newest ${jobs.length} matching of the ${scanned} newest jobs`;
  return page({
    title: 'Jobs',
    nav: 'jobs',
    script: 'jobs.js',
    csrf: o.csrf,
    body: html`<section class="where"><h2>Locations</h2><div id="locations">${o.locations}</div></section>
<section>
<h1>Jobs</h1>
<form class="filter" method="get" action="/">
<label>State <select name="state"><option value="">any</option>${JOB_STATES.map((s) => html`<option${f.state === s ? html` selected` : ''}>${s}</option>`)}</select></label>
${field('name', 'Name', 'part of a name')}
${field('host', 'Host', 'local, lab1…')}
${field('sweep', 'Sweep', 'Name of Name[i]')}
<input type="hidden" name="limit" value="${o.limit}">
<button type="submit">Filter</button> <a href="/">clear</a>
</form>
${o.problem ? html`<p class="bad">${o.problem}</p>` : ''}
<p class="muted" id="count">${note}</p>
<table class="jobs" id="jobs" data-limit="${o.limit}"><thead><tr><th>ID</th><th>Name</th><th>Type</th><th>State</th><th>Where</th><th>Queued</th><th>Time</th><th>Detail</th><th></th></tr></thead>
<tbody>${jobs.map((j) => jobRow(j, o.csrf))}</tbody></table>
${jobs.length === 0 ? html`<p class="muted" id="empty">${f.state || f.name || f.host || f.sweep ? 'No jobs match.' : html`No jobs yet: queue one with <code>jobmanager queue FILE</code>.`}</p>` : ''}
</section>`,
  });
}

export function jobPage(job: JobRecord, runs: RunEntry[], csrf: string): string {
  return page({
    title: `Job ${job.id}`,
    nav: null,
    script: 'job.js',
    csrf,
    body: html`<div id="job" data-id="${job.id}">${jobDetail(job, runs, csrf)}</div>
<h2>Log <span class="muted" id="log-state"></span></h2>
<pre id="log" class="log" aria-live="polite"></pre>
<noscript><p class="muted">The log follows live with JavaScript; <code>jobmanager logs ${job.id}</code> prints it.</p></noscript>`,
  });
}

export function hostsPage(hosts: Html, instances: Html, csrf: string): string {
  return page({
    title: 'Hosts & instances',
    nav: 'hosts',
    script: 'hosts.js',
    csrf,
    body: html`<h1>SSH hosts</h1><div id="hosts">${hosts}</div>
<h1>EC2 instances</h1><div id="instances">${instances}</div>`,
  });
}

export function loginPage(problem: string | null, csrf: string): string {
  return page({
    title: 'Log in',
    nav: null,
    csrf,
    body: html`<h1>This page needs the token</h1>
${problem ? html`<p class="bad">${problem}</p>` : ''}
<p>On the supervisor's machine, <code>jobmanager status</code> prints a one-time login link. Or paste the token (Web.Token in the config):</p>
<form method="post" action="/login" class="login"><input type="password" name="token" autocomplete="current-password" aria-label="token" required> <button type="submit">Log in</button></form>
<p class="muted">Scripts and Prometheus send it as <code>Authorization: Bearer TOKEN</code>.</p>`,
  });
}

export function messagePage(title: string, text: string, csrf: string): string {
  return page({ title, nav: null, csrf, body: html`<h1>${title}</h1><p>${text}</p><p><a href="/">All jobs</a></p>` });
}
