import { StringDecoder } from 'node:string_decoder';
import { shellPath } from '../../util/shell.js';
import type { Logger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
import type { SshConnection } from '../../ssh/connection.js';
import { StopSignal } from '../../util/stop-signal.js';
import { RunLogParser, type RunLogEvent } from '../../runs/run-log.js';
import { HOST_CLOCK_SH, leaseCs, parseStamp, type LeaseTimes } from './lease.js';
import { ensureWatchdogSh, installWatchdogSh, WATCHDOG_DIRS } from './watchdog.js';

// Follows a host's run log for the fetcher, and renews the host's lease on the same channel.
// One long-lived shell over the host's pooled SSH connection runs `tail -F` of the run log, from
// the byte the fetcher has read up to, in the background: lines arrive on its standard output as
// the jobs write them, so no poll is needed to learn that a remote job started, finished a step,
// or exited. The shell itself reads renewals on its standard input (lease.ts):
//
//   host ──stderr──▶ S <host clock>        a challenge, at start and after each C
//   host ◀──stdin─── L <that stamp>        the answer, sent at once: the lease is that stamp
//   host ◀──stdin─── C                     every renewEveryMs: stamp again
//
// The host speaks first: a line sent before the shell has read its whole script would be read
// as script. `read` and `echo` are builtins, so a renewal costs the host no process. When the
// connection breaks (the host, sshd or the network), the follower reports the host unreachable
// and starts again from where it was, with a growing delay, until it is closed.

export interface FollowerEvents {
  events(events: RunLogEvent[], offset: number): void;
  reachable(ok: boolean, reason: string | null): void;
  /** A renewal was just sent (`first`: the first of a new session). */
  renewed(first: boolean): void;
}

export interface FollowedHost {
  /** The host's base directory (paths.ts): its lease, its runs, its watchdog. */
  base: string;
  runLog: string;
  lease: LeaseTimes;
}

export class RemoteLogFollower {
  private readonly stop = new StopSignal();
  private close$: (() => void) | null = null;
  private offset: number;

  constructor(
    readonly host: string,
    private readonly ssh: SshConnection,
    private readonly followed: FollowedHost,
    offset: number,
    private readonly listener: FollowerEvents,
    private readonly log: Logger,
  ) {
    this.offset = offset;
    void this.follow();
  }

  private async follow(): Promise<void> {
    let delay = 200;
    while (!this.stop.stopped) {
      const parser = new RunLogParser();
      parser.consumed = this.offset;
      const decoder = new StringDecoder('utf8');
      const renewal = new Renewal(this.followed.lease.renewEveryMs, (first) => this.listener.renewed(first));
      try {
        const session = await this.ssh.session((chunk) => {
          const events = parser.push(decoder.write(chunk));
          this.offset = parser.consumed;
          if (events.length) this.listener.events(events, this.offset);
        }, (chunk) => renewal.heard(chunk));
        renewal.attach(session);
        session.write(this.script());
        this.close$ = session.close;
        this.listener.reachable(true, null);
        delay = 200;
        await session.ended;
        this.close$ = null;
        if (this.stop.stopped) return;
        this.log.info(`ResultFetcher: lost the run log stream of ${this.host}; following it again`);
      } catch (err) {
        this.listener.reachable(false, errorMessage(err));
      } finally {
        renewal.end();
      }
      await this.stop.sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** The host's side: one brace group, read whole before any of it runs. */
  private script(): string {
    const { base, runLog, lease } = this.followed;
    return [
      '{',
      `JM_B=${shellPath(base)}`,
      HOST_CLOCK_SH,
      `mkdir -p ${WATCHDOG_DIRS.map((dir) => `"$JM_B/${dir}"`).join(' ')} 2>/dev/null`,
      installWatchdogSh('$JM_B'),
      // GNU tail -F of a file missing when it starts (a new store's host, before its first
      // launch) never uses inotify and looks once a second for good (coreutils tail.c), so every
      // remote job's lines came up to a second late. The file is made first (an append of
      // nothing: a builtin, and nothing written is lost), so that tail uses inotify; where it
      // cannot be made, or tail has no inotify, and tail takes -s 0.1, it looks ten times a
      // second. (With jobs started by spawner.py, the SSH row of the bench was 73 jobs/s when
      // tail polled, 140 when it did not.)
      `: >>${shellPath(runLog)} 2>/dev/null`,
      "JM_TS=; tail -s 0.1 -n 0 /dev/null >/dev/null 2>&1 && JM_TS='-s 0.1'",
      `tail $JM_TS -c +${this.offset + 1} -F ${shellPath(runLog)} 2>/dev/null &`,
      'JM_TAIL=$!',
      'jm_now; echo "S $JM_NOW" >&2',
      'while read JM_C JM_A; do',
      '  case $JM_C in',
      '    C) jm_now; echo "S $JM_NOW" >&2;;',
      '    L)',
      "      case $JM_A in ''|*[!0-9]*) continue;; esac",
      '      JM_S=0; [ -f "$JM_B/lease" ] && read JM_S <"$JM_B/lease"',
      "      case $JM_S in ''|*[!0-9]*) JM_S=0;; esac",
      '      jm_now',
      // Never back: a stamp older than the lease there (another renewer's, or a launch's) is
      // left; a stamp from before the host rebooted (ahead of its clock now) is replaced.
      '      if [ "$JM_A" -gt "$JM_S" ] || [ "$JM_S" -gt "$JM_NOW" ]; then echo "$JM_A" >"$JM_B/lease"; fi',
      ensureWatchdogSh('$JM_B', String(leaseCs(lease)), true).replace(/^/gm, '      '),
      '      ;;',
      '  esac',
      'done',
      'kill $JM_TAIL 2>/dev/null',
      '}',
      '',
    ].join('\n');
  }

  close(): void {
    this.stop.stop();
    this.close$?.();
  }
}

type Session = Awaited<ReturnType<SshConnection['session']>>;

/** One session's renewals: answers each challenge at once, asks for the next after renewEveryMs. */
class Renewal {
  private session: Session | null = null;
  private text = '';
  private timer: NodeJS.Timeout | null = null;
  private first = true;
  private ended = false;

  constructor(
    private readonly everyMs: number,
    private readonly onRenewed: (first: boolean) => void,
  ) {}

  attach(session: Session): void {
    this.session = session;
  }

  heard(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    let end: number;
    while ((end = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, end);
      this.text = this.text.slice(end + 1);
      const stamp = line.startsWith('S ') ? parseStamp(line.slice(2)) : null;
      if (stamp === null || !this.session || this.ended) continue;
      // The time of sending is what the fence bound counts from, so it is taken before the write.
      const first = this.first;
      this.first = false;
      this.onRenewed(first);
      this.session.write(`L ${stamp}\n`);
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.ended) this.session?.write('C\n');
      }, this.everyMs);
    }
  }

  end(): void {
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
