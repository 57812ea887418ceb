import { formatDuration } from '../util/duration.js';
import { isFinal, type JobRecord, type RunEntry } from '../store/job-record.js';
import type { LocationLoad, QueueDepths } from '../store/store.js';
import { allSteps, describeDownloads } from '../cli/views.js';
import { Html, html, multiline, when } from './html.js';
import type { HostRow, InstanceRow, LocationInfo } from './fleet-view.js';

// The pieces of the pages, as HTML: a job's row, a job's details, the location, host and
// instance tables. The server renders each piece once and sends the same text to every browser
// that shows it (first in the page, then over Server-Sent Events), so the escaping in html.ts is
// the only escaping there is.

/** The buttons a job has: cancel while it may still run, retry once it failed or was cancelled. */
function actions(job: JobRecord, csrf: string, next: string): Html {
  const form = (verb: 'cancel' | 'retry', label: string) =>
    html`<form method="post" action="/jobs/${job.id}/${verb}" class="action"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="next" value="${next}"><button type="submit" class="${verb}" data-verb="${verb}">${label}</button></form>`;
  if (!isFinal(job.state)) return job.cancelRequested ? html`<span class="muted">cancelling…</span>` : form('cancel', 'Cancel');
  if (job.state === 'failed' || job.state === 'cancelled') return form('retry', 'Retry');
  return html``;
}

function stateBadge(state: string): Html {
  return html`<span class="state state-${/^[a-z]+$/.test(state) ? state : 'unknown'}">${state}</span>`;
}

/** Time taken (ended), running for (with data-since, which the page's script keeps ticking), or waiting. */
function timeCell(job: JobRecord, now: number): Html {
  if (isFinal(job.state) && job.startedAt !== null && job.endedAt !== null) return html`${formatDuration(job.endedAt - job.startedAt)}`;
  if (job.state === 'running' && job.startedAt !== null) return html`<span data-since="${job.startedAt}">${formatDuration(now - job.startedAt)}</span>`;
  if (!isFinal(job.state) && job.queuedAt !== null) return html`<span class="muted">waiting <span data-since="${job.queuedAt}">${formatDuration(now - job.queuedAt)}</span></span>`;
  return html`-`;
}

function detail(job: JobRecord): string {
  if (job.state === 'succeeded') return job.result === null || job.result === undefined ? '' : JSON.stringify(job.result);
  if (job.state === 'queued' && job.retryAt) return `retry ${job.attempt} of ${job.retries + 1}: ${job.reason ?? ''}`;
  return job.reason ?? '';
}

export function jobRow(job: JobRecord, csrf: string, now = Date.now()): Html {
  return html`<tr id="job-${job.id}" data-id="${job.id}"><td class="num"><a href="/jobs/${job.id}">${job.id}</a></td><td class="name"><a href="/jobs/${job.id}">${job.name}</a></td><td>${job.classType}</td><td>${stateBadge(job.state)}</td><td>${job.host ?? job.location ?? '-'}</td><td class="time">${when(job.queuedAt)}</td><td class="num">${timeCell(job, now)}</td><td class="detail" title="${detail(job)}">${detail(job)}</td><td>${actions(job, csrf, '/')}</td></tr>`;
}

export function locationsTable(depths: QueueDepths, locations: LocationInfo[]): Html {
  const row = (load: LocationLoad, i: number) => {
    const slots = locations[i]?.slots ?? null;
    const full = slots !== null && load.used >= slots && slots > 0;
    return html`<tr><td>${load.location}</td><td class="num">${load.waiting}</td><td class="num${full ? ' full' : ''}">${slots === null ? '-' : `${load.used}/${slots}`}</td></tr>`;
  };
  return html`<table class="locations"><thead><tr><th>Location</th><th>Waiting</th><th>Slots used</th></tr></thead><tbody>${depths.locations.map(row)}</tbody></table>
<p class="queues muted">Job_Queue ${depths.Job_Queue} · Granted_Queue ${depths.Granted_Queue} · Running_Queue ${depths.Running_Queue} · waiting to retry ${depths.Delayed}</p>`;
}

/** Everything of one job but its log: header, facts, buttons, steps, runs, result. */
export function jobDetail(job: JobRecord, runs: RunEntry[], csrf: string, now = Date.now()): Html {
  const fact = (name: string, value: Html | string) => html`<tr><th>${name}</th><td>${value}</td></tr>`;
  const took = (a: number | null, b: number | null) => (a === null || b === null ? '-' : formatDuration(b - a));
  const steps = allSteps(job);
  const self = `/jobs/${job.id}`;
  return html`<h1>Job ${job.id} <span class="name">${job.name}</span> ${stateBadge(job.state)}</h1>
<div class="actions">${actions(job, csrf, self)}</div>
${job.reason ? html`<p class="reason">${job.reason}</p>` : ''}
<table class="facts">
${fact('ClassType', job.classType)}
${fact('File', job.file || '-')}
${fact('Location', job.host && job.host !== job.location ? `${job.location ?? '-'} → ${job.host}` : job.location ?? '-')}
${fact('Attempt', `${job.attempt} of ${job.retries + 1}${job.run ? `, run ${job.run}` : ''}${job.manualRetries ? `, retried by hand ${job.manualRetries}×` : ''}`)}
${fact('Queued', when(job.queuedAt))}
${job.startedAt ? fact('Started', `${when(job.startedAt)} (waited ${took(job.queuedAt, job.startedAt)})`) : ''}
${job.endedAt ? fact('Ended', `${when(job.endedAt)}${job.startedAt ? ` (took ${took(job.startedAt, job.endedAt)})` : ''}`) : ''}
${job.state === 'running' && job.startedAt ? fact('Running for', html`<span data-since="${job.startedAt}">${formatDuration(now - job.startedAt)}</span>`) : ''}
${job.exitCode !== null ? fact('Exit code', String(job.exitCode)) : ''}
${job.downloads ? fact('Downloads', html`<span class="bad">${describeDownloads(job.downloads)}</span>`) : ''}
</table>
<h2>Steps</h2>
${steps.length === 0 ? html`<p class="muted">no steps recorded yet</p>` : html`<table class="steps"><thead><tr><th>#</th><th>Step</th><th>State</th><th>Started</th><th>Took</th><th>Exit</th></tr></thead><tbody>${steps.map((s, i) => html`<tr><td class="num">${i + 1}</td><td>${s.label}</td><td>${stateBadge(s.state)}</td><td class="time">${when(s.startedAt)}</td><td class="num">${took(s.startedAt, s.endedAt)}</td><td class="num">${s.exitCode ?? '-'}</td></tr>`)}</tbody></table>`}
<h2>Runs</h2>
${runs.length === 0 ? html`<p class="muted">no run has ended yet</p>` : html`<table class="runs"><thead><tr><th>Run</th><th>Attempt</th><th>Outcome</th><th>Where</th><th>Started</th><th>Took</th><th>Reason</th></tr></thead><tbody>${runs.map((r) => html`<tr><td class="num">${r.run}</td><td class="num">${r.attempt}</td><td>${stateBadge(r.outcome)}</td><td>${r.location ?? '-'}</td><td class="time">${when(r.startedAt)}</td><td class="num">${took(r.startedAt, r.endedAt)}</td><td>${r.reason}</td></tr>`)}</tbody></table>`}
<h2>Result</h2>
${job.result === null || job.result === undefined ? html`<p class="muted">none</p>` : html`<pre class="result">${multiline(JSON.stringify(job.result, null, 2))}</pre>`}`;
}

export function hostsTable(hosts: HostRow[], now = Date.now()): Html {
  if (hosts.length === 0) return html`<p class="muted">No SSH hosts: list them under Hosts in the config (see config/default.yaml).</p>`;
  const reachable = (h: HostRow) => (h.probe === null ? html`<span class="muted">checking…</span>` : h.probe.error === null ? html`<span class="ok">yes</span>` : html`<span class="bad">no: ${h.probe.error}</span>`);
  return html`<table class="hosts"><thead><tr><th>Name</th><th>Address</th><th>State</th><th>Reachable</th><th>Slots</th><th>Jobs</th></tr></thead><tbody>${hosts.map((h) => html`<tr><td>${h.name}</td><td>${h.address}${h.adhoc ? html` <span class="muted">(from a job file)</span>` : ''}</td><td>${h.state === 'down' ? html`<span class="bad">down</span> for ${h.since ? formatDuration(now - h.since) : '?'}${h.reason ? `: ${h.reason}` : ''}` : html`<span class="ok">up</span>`}</td><td>${reachable(h)}</td><td class="num">${h.slots.used}/${h.slots.total}</td><td>${jobLinks(h.jobs)}</td></tr>`)}</tbody></table>`;
}

export function instancesTable(instances: InstanceRow[], maxInstances: number, now = Date.now()): Html {
  if (instances.length === 0) return html`<p class="muted">No EC2 instances (at most ${maxInstances} at once; they are launched for EC2 jobs).</p>`;
  return html`<table class="instances"><thead><tr><th>Instance</th><th>State</th><th>Job</th><th>Idle since</th><th>Age</th><th>Address</th><th>Type</th><th>Image</th><th>Note</th></tr></thead><tbody>${instances.map((i) => html`<tr><td>${i.instanceId ?? '(requested)'}</td><td>${stateBadge(i.shownState)}</td><td>${jobLinks(i.jobs)}</td><td class="time">${i.shownState === 'idle' || i.state === 'retiring' ? when(i.idleSince) : '-'}</td><td class="num">${formatDuration(now - i.requestedAt)}</td><td>${i.address ?? '-'}</td><td>${i.instanceType}</td><td>${i.imageId}</td><td>${i.lastError ?? ''}</td></tr>`)}</tbody></table>`;
}

function jobLinks(ids: string[]): Html {
  return ids.length === 0 ? html`-` : html`${ids.map((id, i) => html`${i ? ' ' : ''}<a href="/jobs/${id}">${id}</a>`)}`;
}
