# JobManager's spawner (lib/backends/remote/spawner.py): the fast path of a host's launch shell.
#
# Run by the starter on one SSH channel, where the host has Python 3.8 or later and its
# posix_spawn can start a session (launch-shell.ts falls back to `sh -s` otherwise): the command
# is a short `python3 -I -u -c` that reads this file from its first line of input (as JSON) and
# runs it. What it does for a batch is what the shell batch of host-launcher.ts does, without
# a fork of its own per job: each job is started with posix_spawn (a vfork: nothing copied) in a
# session of its own, where the shell path pays a subshell, a background fork and an exec of
# setsid, and a `mkdir` per batch.
#
# Takes, on standard input after its own code, one batch per line, a JSON object:
#   {"id": n, "runLog": path, "launchedAt": ms, "dirs": [path...],
#    "watchdog": [path, text] or null, "jobs": [{"dir", "run", "claim", "script", "yaml"}...]}
# with absolute paths. A line cut short (the connection lost mid-batch) is not run: a batch runs
# whole or not at all, as the shell's brace group does.
# Per batch: makes the directories; writes the watchdog's file if it is missing; for each job,
# enters its directory (else appends "K <run> cannot enter ..." to the run log), writes job.yaml
# unless the run has a claim already, and starts `sh -c <script>` there: its own session and
# process group, stdin /dev/null, stdout and stderr appended to job.log, every signal at its
# default, JM_LAUNCHED_AT in its environment. The job's script does the rest (its claim, its
# lease, the run log: job-script.ts).
# Returns, on standard output: "JM-SPAWNER ready" once at start (or "JM-SPAWNER unavailable
# <why>", then exits), and after each batch "JM-ACK <id> <host clock>", the clock as the job
# scripts' jm_now reads it (lease.ts): centiseconds of /proc/uptime, else whole seconds * 100.

import json, os, signal, socket, sys, time

# Python ignores these; an ignored signal stays ignored across exec, so the jobs get them back.
RESET = {s for s in (getattr(signal, 'SIGPIPE', None), getattr(signal, 'SIGXFSZ', None)) if s is not None}


def now_cs():
    try:
        with open('/proc/uptime') as f:
            whole, _, frac = f.read().split()[0].partition('.')
        return int(whole + frac)
    except (OSError, ValueError, IndexError):
        return int(time.time()) * 100


def reap(*_):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def utf8(text):
    # Bytes as the shell path passes them, whatever the host's locale.
    return text.encode('utf-8', 'surrogatepass')


def start(job, env):
    # posix_spawnp: `sh` looked up on the PATH, as the shell path's `sh -c` is.
    return os.posix_spawnp(b'sh', [b'sh', b'-c', utf8(job['script'])], env, setsid=True, setsigdef=RESET, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, '/dev/null', os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, 'job.log', os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ])


def write(path, text, mode='wb'):
    with open(path, mode) as f:
        f.write(utf8(text))


def append(path, line):
    try:
        write(utf8(path), line + '\n', 'ab')
    except OSError:
        pass


def run(batch):
    for d in batch['dirs']:
        try:
            os.makedirs(utf8(d), exist_ok=True)
        except OSError:
            pass  # entering it fails below, and says so
    if batch.get('watchdog'):
        path, text = batch['watchdog']
        if not os.path.exists(utf8(path)):
            write(utf8(path), text)
    env = dict(os.environb, JM_LAUNCHED_AT=b'%d' % batch['launchedAt'])
    for job in batch['jobs']:
        try:
            os.chdir(utf8(job['dir']))
        except OSError:
            append(batch['runLog'], 'K %s cannot enter the job directory %s on %s' % (job['run'], job['dir'], socket.gethostname()))
            continue
        try:
            if not os.path.exists(utf8(job['claim'])):
                write('job.yaml', job['yaml'] + '\n')
            start(job, env)
        except Exception as err:  # OSError, or a value no exec can carry: this job only
            append(batch['runLog'], 'K %s could not be started on %s: %s' % (job['run'], socket.gethostname(), getattr(err, 'strerror', None) or err))
        finally:
            os.chdir('/')


def main():
    # Started once here, so that an old Python (no posix_spawn, or one that cannot start a
    # session) is found before any job depends on it.
    try:
        pid = os.posix_spawnp(b'sh', [b'sh', b'-c', b':'], os.environb, setsid=True, setsigdef=RESET)
        os.waitpid(pid, 0)
    except Exception as err:  # AttributeError, NotImplementedError, OSError: all mean "use sh"
        print('JM-SPAWNER unavailable %s' % err, flush=True)
        return
    signal.signal(signal.SIGCHLD, reap)
    print('JM-SPAWNER ready', flush=True)
    for line in sys.stdin:
        if not line.endswith('\n'):
            break
        batch = json.loads(line)
        run(batch)
        print('JM-ACK %d %d' % (batch['id'], now_cs()), flush=True)


main()
