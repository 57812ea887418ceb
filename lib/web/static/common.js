// Shared by the pages: live updates over Server-Sent Events, running times that tick, and the
// cancel / retry buttons sent without leaving the page. Everything the server sends is HTML it
// escaped itself (lib/web/html.ts) or plain text put in with textContent.
'use strict';

const jm = {
  csrf: document.querySelector('meta[name="jm-csrf"]')?.content ?? '',

  /** Opens an EventSource and shows in the header whether it is connected. */
  live(url, handlers) {
    const dot = document.getElementById('live');
    const source = new EventSource(url);
    source.onopen = () => { dot?.classList.add('on'); dot?.setAttribute('title', 'live updates: connected'); };
    source.onerror = () => { dot?.classList.remove('on'); dot?.setAttribute('title', 'live updates: reconnecting…'); };
    for (const [event, handle] of Object.entries(handlers)) {
      source.addEventListener(event, (e) => handle(JSON.parse(e.data)));
    }
    return source;
  },

  /** Replaces an element's content with HTML the server rendered and escaped. */
  fill(element, html) {
    const template = document.createElement('template');
    template.innerHTML = html;
    element.replaceChildren(template.content);
  },

  duration(ms) {
    if (!(ms >= 0)) return '-';
    if (ms < 1000) return `${Math.round(ms)}ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)}s`;
    const s = Math.round(ms / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return `${d}d${h}h`;
    if (h) return `${h}h${m}m`;
    return `${m}m${r}s`;
  },
};

setInterval(() => {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-since]')) el.textContent = jm.duration(now - Number(el.dataset.since));
}, 1000);

// Cancel and retry: posted in the background (the row or page updates from the live stream);
// without JavaScript the form posts and the server sends the browser back.
document.addEventListener('submit', async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains('action')) return;
  event.preventDefault();
  const button = form.querySelector('button');
  if (button) button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: 'POST',
      body: new URLSearchParams(new FormData(form)),
      headers: { 'X-CSRF-Token': jm.csrf, Accept: 'application/json' },
      credentials: 'same-origin',
    });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) alert(reply.error ?? `the server answered ${response.status}`);
  } finally {
    if (button) button.disabled = false;
  }
});
