import type { IncomingMessage, ServerResponse } from 'node:http';

// One Server-Sent Events stream to one browser (https://html.spec.whatwg.org/multipage/server-sent-events.html).
// A comment line every 15 s keeps proxies and the browser from closing a quiet stream; a browser
// that goes away ends it (onClose), as does the server's close().

const KEEPALIVE_MS = 15_000;
/** A browser that reads slower than this much buffered output is dropped (it reconnects by itself). */
const MAX_BUFFERED = 8 << 20;

export class SseStream {
  private readonly keepalive: NodeJS.Timeout;
  private readonly closers: (() => void)[] = [];
  private ended = false;

  constructor(
    req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    this.keepalive = setInterval(() => this.write(': keepalive\n\n'), KEEPALIVE_MS);
    this.keepalive.unref();
    req.on('close', () => this.close());
    res.on('error', () => this.close());
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Sends one event; `data` is JSON-encoded (so it is one line, whatever it holds). */
  send(event: string, data: unknown): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Runs `fn` when the stream ends, whoever ends it. */
  onClose(fn: () => void): void {
    if (this.ended) fn();
    else this.closers.push(fn);
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.keepalive);
    this.res.end();
    for (const fn of this.closers.splice(0)) {
      try {
        fn();
      } catch {
        // one listener's failure must not keep the others from running
      }
    }
  }

  private write(text: string): void {
    if (this.ended) return;
    if (this.res.writableLength > MAX_BUFFERED) {
      this.close();
      return;
    }
    this.res.write(text);
  }
}
