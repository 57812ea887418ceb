// The lease that remote runs live by (issue 9: never two runs of a job at once, a partition
// included). A host lets its runs go on only while the supervisor keeps renewing the host's
// lease; when it lapses, the host's watchdog stops them (watchdog.ts). The supervisor gives up
// on a run there (and may start it elsewhere) only once it knows the run has stopped.
//
//   supervisor (fetcher)                         host (one watchdog per host and deployment)
//   ─────────────────────                        ────────────────────────────────────────────
//                     ◀── S <host clock> ───     the follower's session stamps a challenge
//   sent at s: ──── L <that stamp> ─────────▶    lease := the stamp (host clock, when it was made)
//                                                watchdog, every tick: host now - lease > L ?
//                                                  -> SIGSTOP every run's process group
//   gives up at s + F (F below), never sooner
//
// The lease is the host's own clock reading taken when the challenge was made, and the answer
// that makes it the lease is sent after the supervisor received it. A renewal held back in the
// network, however long, so only makes an older lease (one that lapses sooner): a late
// renewal can never stretch a lease past what the supervisor counts on. The host measures the
// lease's age on its own clock alone, and the supervisor the time since its last answer on its
// own: no two clocks are ever compared, so only their rates matter, not their offset.
//
// The bound. With L the lease, T the watchdog's tick, c the host clock's step, ρ each clock's
// rate error and m a margin for the stop itself, a run stops no later than
//
//     F = L·(1 + 2ρ) + T + c + m        after the supervisor's last renewal (or launch) there
//
// (the host's clock may run slow by ρ, the supervisor's fast by ρ). Numbers:
//   L = HostDownAfter / 2 (at least 5 s); T = 1 s (`sleep 1`, POSIX has no shorter sleep);
//   c = 1 s (date +%s; Linux hosts use /proc/uptime, 10 ms); ρ = 0.1% (1000 ppm: ten times a
//   poor crystal's error, twice what NTP ever slews); m = 0.5 s.
//   Default HostDownAfter 2m: L = 60 s, F = 62.6 s. HostDownAfter 8s: L = 5 s, F = 7.5 s.
// The supervisor replaces a run no sooner than the later of HostDownAfter after its host stopped
// answering and F after its last renewal there, so with HostDownAfter of 15 s and more, F is
// never what it waits for. L is at least 5 s because a launch must reach its host, and its run
// start, within L of the host stamp it was sent with (host-launcher.ts): on a machine loaded to
// the point of taking seconds for a fork, a shorter lease would turn launches away again and again.
//
// A supervisor that is merely slow must not fence healthy runs: renewals go every L/8 (at most
// 5 s), so a lease lapses only after L minus that (55 s with the defaults, 4.4 s with
// HostDownAfter 8s) without a renewal. Runs stopped by a lapse are not lost: a supervisor that
// answers again finds them stopped and, if they are still the jobs' current runs, lets them go
// on (SIGCONT); only runs it gave up on meanwhile are killed (recorded as fenced).

/** The watchdog's tick (POSIX sleep takes whole seconds). */
export const WATCHDOG_TICK_MS = 1000;
/** The coarsest host clock read (date +%s); /proc/uptime steps by 10 ms. */
export const HOST_CLOCK_STEP_MS = 1000;
/** The rate error allowed each clock (1000 ppm). */
export const CLOCK_DRIFT = 0.001;
/** What the stop itself may take: the sweep of the host's runs and the signals. */
export const STOP_MARGIN_MS = 500;
/** The shortest lease: below it a busy machine would keep stopping healthy runs and turning launches away. */
export const MIN_LEASE_MS = 5000;
/** The longest time between two renewals. */
export const MAX_RENEW_EVERY_MS = 5000;

export interface LeaseTimes {
  /** L: how long a host's runs go on without a renewal, by the host's own clock. */
  leaseMs: number;
  /** How often the fetcher renews a host's lease. */
  renewEveryMs: number;
  /** F: how long after its last renewal (or launch) there a host's runs have surely stopped. */
  fenceBoundMs: number;
}

export function leaseTimes(hostDownAfterMs: number): LeaseTimes {
  const leaseMs = Math.max(MIN_LEASE_MS, Math.round(hostDownAfterMs / 2));
  const renewEveryMs = Math.min(MAX_RENEW_EVERY_MS, Math.round(leaseMs / 8));
  const fenceBoundMs = Math.ceil(leaseMs * (1 + 2 * CLOCK_DRIFT) + WATCHDOG_TICK_MS + HOST_CLOCK_STEP_MS + STOP_MARGIN_MS);
  return { leaseMs, renewEveryMs, fenceBoundMs };
}

/** The lease as the host scripts count it: centiseconds of the host clock. */
export function leaseCs(times: LeaseTimes): number {
  return Math.ceil(times.leaseMs / 10);
}

/**
 * Defines `jm_now` in sh: sets JM_NOW to the host clock in centiseconds, without a process on
 * Linux (the kernel's uptime: monotonic, untouched by NTP steps), else from `date +%s` (a clock
 * stepped back on such a host would stretch its leases: Linux hosts are not exposed to that).
 * Every host script that reads or writes a lease stamp uses this one clock.
 */
export const HOST_CLOCK_SH = [
  'if [ -r /proc/uptime ]; then',
  '  jm_now() { read JM_U JM_REST </proc/uptime; JM_NOW=${JM_U%.*}${JM_U#*.}; JM_NOW=${JM_NOW#0}; }',
  'else',
  '  jm_now() { JM_NOW=$(date +%s)00; }',
  'fi',
].join('\n');

/** A host clock stamp as the host scripts print it (whole centiseconds), or null. */
export function parseStamp(text: string): number | null {
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}
