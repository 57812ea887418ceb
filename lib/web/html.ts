import { printable } from '../jobfile/fields.js';

// HTML built from text that comes from job files, job output and Redis: every interpolated value
// is escaped unless it is already Html (made by this same template). The terminal has the same
// concern in lib/cli/views.ts (`shown()`); here control characters are also made visible
// (\u001b rather than an invisible byte), and nothing is ever put in a <script> or an event
// handler attribute: the pages' JavaScript is static files (see static.ts and its CSP).

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Value = Html | string | number | null | undefined | false | Value[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text as HTML: escaped for both element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(printable(String(value)));
}

/** The template tag: html`<td>${name}</td>` escapes `name`; nested html`` fragments pass as they are. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return new Html(out);
}

/** Several lines of text (a result, a log), escaped, line breaks kept. */
export function multiline(text: string): Html {
  return new Html(escapeHtml(text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)));
}

export interface PageOptions {
  title: string;
  /** Which item of the navigation is this page. */
  nav: 'jobs' | 'hosts' | null;
  /** The page's own script (served from /static/, after common.js). */
  script?: string;
  csrf: string;
  body: Html;
}

export function page(o: PageOptions): string {
  const item = (href: string, name: string, key: PageOptions['nav']) => html`<a href="${href}"${o.nav === key ? new Html(' aria-current="page"') : ''}>${name}</a>`;
  return '<!doctype html>\n' + html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="jm-csrf" content="${o.csrf}">
<title>${o.title} · JobManager</title>
<link rel="stylesheet" href="/static/style.css">
${o.script ? html`<script src="/static/common.js" defer></script><script src="/static/${o.script}" defer></script>` : ''}
</head>
<body>
<header><strong>JobManager</strong><nav>${item('/', 'Jobs', 'jobs')}${item('/hosts', 'Hosts & instances', 'hosts')}<a href="/metrics">Metrics</a></nav><span id="live" class="live" title="live updates">●</span></header>
<main>
${o.body}
</main>
</body>
</html>
`.text;
}

/** A time as the page shows it: local date and time to the second (ISO-like, sortable). */
export function when(ms: number | null): string {
  if (ms === null) return '-';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
