import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isLoopback, type WebConfig } from '../config/config.js';

// Who may use the web page, and which requests may change something.
//
// - Without Web.Token (allowed on loopback only: lib/config/config.ts) anyone on this machine may.
//   The Host header must then name a loopback address, or a page on another site could reach the
//   supervisor through DNS rebinding (its name resolving to 127.0.0.1).
// - With Web.Token every request needs it: `Authorization: Bearer TOKEN` (Prometheus, scripts),
//   or the session cookie (HttpOnly, SameSite=Strict) that a login sets. A login comes from the
//   one-time link `jobmanager status` prints (/login?code=…: signed with the token, it expires
//   after 15 minutes and works once, so the token itself is never in a URL, a page or a log),
//   or from the login form where a person pastes the token.
// - POSTs (cancel, retry) must come from the page itself: a Sec-Fetch-Site other than
//   same-origin, or an Origin other than this server, is refused, and the form's CSRF token
//   must match: a random value made at each start, in every page's forms (one for all
//   sessions: another site can read none of the pages, which is all a CSRF token needs).

const LOGIN_CODE_MS = 15 * 60_000;
const SESSION_MS = 7 * 86_400_000;
export const SESSION_COOKIE = 'jm_session';

export type Access = { ok: true } | { ok: false; status: 401 | 403; reason: string };

function hmac(key: string | Buffer, text: string): string {
  return createHmac('sha256', key).update(text).digest('base64url');
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A one-time login link for the page at `baseUrl` (made by `jobmanager status`, from the config's token). */
export function loginLink(baseUrl: string, token: string, now = Date.now()): string {
  const body = `${now + LOGIN_CODE_MS}.${randomBytes(12).toString('base64url')}`;
  return `${baseUrl.replace(/\/$/, '')}/login?code=${body}.${hmac(token, `login:${body}`)}`;
}

export class WebAuth {
  /** The CSRF token of this start's pages. */
  readonly csrf = randomBytes(24).toString('base64url');
  private readonly usedCodes = new Map<string, number>();
  private port = 0;

  constructor(private readonly config: WebConfig) {}

  get needsToken(): boolean {
    return this.config.token !== null;
  }

  /** The port actually listened on (the configured one may have been taken). */
  listening(port: number): void {
    this.port = port;
  }

  /** May this request be served at all? */
  check(req: IncomingMessage): Access {
    if (!this.hostAllowed(req.headers.host)) return { ok: false, status: 403, reason: 'this address is not the web page of JobManager (the Host header names another site)' };
    const token = this.config.token;
    if (token === null) return { ok: true };
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined) return same(bearer, token) ? { ok: true } : { ok: false, status: 401, reason: 'the bearer token is wrong' };
    const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (cookie && this.sessionValid(cookie)) return { ok: true };
    return { ok: false, status: 401, reason: 'this page needs the token' };
  }

  private hostAllowed(host: string | undefined): boolean {
    if (this.config.token !== null) return true; // every request proves itself; any name may lead here
    if (!host) return false;
    const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(host);
    if (!match) return false;
    const name = (match[1] ?? match[2]).toLowerCase();
    return isLoopback(name) && (match[3] === undefined || Number(match[3]) === this.port);
  }

  /** A login code from loginLink(): valid, not expired, not used before. Uses it up. */
  redeemCode(code: string, now = Date.now()): boolean {
    const token = this.config.token;
    const match = /^(\d{1,15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/.exec(code);
    if (!token || !match) return false;
    const expires = Number(match[1]);
    const body = `${match[1]}.${match[2]}`;
    if (!same(match[3], hmac(token, `login:${body}`)) || expires < now || expires > now + LOGIN_CODE_MS) return false;
    for (const [used, until] of this.usedCodes) if (until < now) this.usedCodes.delete(used);
    if (this.usedCodes.has(body)) return false;
    this.usedCodes.set(body, expires);
    return true;
  }

  /** The token pasted into the login form. */
  tokenMatches(text: string): boolean {
    return this.config.token !== null && same(text, this.config.token);
  }

  /** A new session cookie's Set-Cookie value. */
  newSession(now = Date.now()): string {
    const body = `${now + SESSION_MS}.${randomBytes(12).toString('base64url')}`;
    const value = `${body}.${hmac(this.config.token!, `session:${body}`)}`;
    return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}`;
  }

  private sessionValid(value: string, now = Date.now()): boolean {
    const match = /^(\d{1,15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!match || Number(match[1]) < now) return false;
    return same(match[3], hmac(this.config.token!, `session:${match[1]}.${match[2]}`));
  }

  /** May this POST change something? null if so, else why not. */
  checkPost(req: IncomingMessage, formToken: string | null): string | null {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return `a request from another site (Sec-Fetch-Site: ${site}) cannot change jobs`;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`) return 'a request from another origin cannot change jobs';
    const token = formToken ?? (typeof req.headers['x-csrf-token'] === 'string' ? req.headers['x-csrf-token'] : null);
    if (token === null || !same(token, this.csrf)) return 'the form is stale or not from this page (CSRF token): reload the page and try again';
    return null;
  }
}

export function readCookie(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return null;
}
