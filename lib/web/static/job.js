// One job: its details are replaced as they change; its log is appended as it is written (as
// text: never parsed as HTML), keeping the last MAX characters.
'use strict';

(() => {
  const MAX = 1 << 20;
  const job = document.getElementById('job');
  const log = document.getElementById('log');
  const state = document.getElementById('log-state');
  const id = job.dataset.id;
  const atBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;

  jm.live(`/jobs/${encodeURIComponent(id)}/events`, {
    job(data) {
      jm.fill(job, data.html);
    },
    log(text) {
      const follow = atBottom();
      log.append(text);
      if (log.textContent.length > MAX) log.textContent = log.textContent.slice(-MAX);
      state.textContent = 'following';
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    },
    'log-skipped'(data) {
      log.prepend(`… ${data.bytes} earlier bytes left out (jobmanager logs ${id} prints them all)\n`);
    },
    'log-end'(data) {
      state.textContent = `complete (the job ${data.state})`;
    },
    'log-again'() {
      log.append('\n— retried: the next run —\n');
      state.textContent = 'waiting for the next run';
    },
    'log-error'(data) {
      state.textContent = data.message;
    },
  });
})();
