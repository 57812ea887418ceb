#!/usr/bin/perl
# The local launcher: starts local jobs for the starter, records what it did in the run log.
#
#   starter ──(stdin: run id \0 job dir \0 script \0)──> launcher ──fork──> sh -c script (its own
#                                                           │                process group, in the
#                                                           │                job's directory)
#                                                           └──appends──> run log <──appends── job
#
# Why Perl and not child_process.spawn: Node's spawn costs ~1.1 ms a job here (fork of a large
# process), twice what xargs needs; a small Perl process forks at the cost xargs pays. Only
# perl-base modules are used (Time::HiRes if present), so it runs wherever Debian runs.
#
# Run log lines (one write each, O_APPEND, so lines from many processes never interleave):
#   P <launcher pid> <ms>        the launcher started
#   F <run> <pid> <ms>           forked: the job's process (and process group) id
#   K <run> <reason>             the job could not be started (no directory, fork failed)
#   R <run> <wait status> <ms>   reaped: the job's shell ended with this wait(2) status
#   E <ms>                       stdin closed: this launcher will start nothing more
#   Q <ms>                       every job it started has been reaped; the launcher exits
# The job script itself appends D (a step done) and X (exit) lines; see lib/backends/job-script.ts.
#
# The launcher outlives a supervisor that dies: it keeps reaping (and recording) its jobs until
# the last one ends. It never stops a job.
use strict;
use warnings;
use POSIX ();
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);

my ($run_log) = @ARGV;
die "usage: launcher.pl RUN_LOG\n" unless defined $run_log;

my $now_ms = eval { require Time::HiRes; sub { int(Time::HiRes::time() * 1000) } } || sub { time() * 1000 };

sysopen(my $log, $run_log, O_WRONLY | O_APPEND | O_CREAT, 0600) or die "launcher: cannot open $run_log: $!\n";
sub record { my $line = join(' ', @_) . "\n"; syswrite($log, $line) }

$SIG{HUP} = $SIG{INT} = $SIG{PIPE} = 'IGNORE';
pipe(my $wake_r, my $wake_w) or die "launcher: pipe: $!\n";
$wake_w->blocking(0) if $wake_w->can('blocking');
$SIG{CHLD} = sub { syswrite($wake_w, 'c') };

my %run_of;      # pid -> run id
my $buffer = '';
my $stdin_open = 1;
record('P', $$, $now_ms->());

sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $run = delete $run_of{$pid};
    record('R', $run, $?, $now_ms->()) if defined $run;
  }
}

sub launch {
  my ($run, $dir, $script) = @_;
  my $pid;
  for my $try (1 .. 20) {
    $pid = fork();
    last if defined $pid;
    select(undef, undef, undef, 0.05 * $try);
  }
  if (!defined $pid) { record('K', $run, "fork failed: $!"); return; }
  if ($pid == 0) {
    $SIG{$_} = 'DEFAULT' for qw(CHLD HUP INT PIPE);
    close($wake_r); close($wake_w);
    setpgrp(0, 0);
    mkdir($dir, 0755);
    if (!chdir($dir)) { record('K', $run, "cannot enter the job directory $dir: $!"); POSIX::_exit(127); }
    open(STDIN, '<', '/dev/null');
    if (!open(STDOUT, '>>', 'job.log')) { record('K', $run, "cannot open $dir/job.log: $!"); POSIX::_exit(127); }
    open(STDERR, '>&', \*STDOUT);
    { exec('/bin/sh', '-c', $script) };
    record('K', $run, "cannot run /bin/sh: $!");
    POSIX::_exit(127);
  }
  $run_of{$pid} = $run;
  record('F', $run, $pid, $now_ms->());
}

while ($stdin_open || %run_of) {
  my $want = '';
  vec($want, fileno(STDIN), 1) = 1 if $stdin_open;
  vec($want, fileno($wake_r), 1) = 1;
  my $ready = select(my $got = $want, undef, undef, undef);
  if ($ready < 0) { reap(); next; }   # EINTR from SIGCHLD
  if (vec($got, fileno($wake_r), 1)) { sysread($wake_r, my $drain, 4096); reap(); }
  if ($stdin_open && vec($got, fileno(STDIN), 1)) {
    my $n = sysread(STDIN, $buffer, 65536, length $buffer);
    next if !defined $n && $!{EINTR};
    if (!$n) { $stdin_open = 0; record('E', $now_ms->()); }
    while ((my @fields = split(/\0/, $buffer, 4)) >= 4) {
      $buffer = $fields[3];
      launch(@fields[0 .. 2]);
    }
  }
  reap();
}
record('Q', $now_ms->());
