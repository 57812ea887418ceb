// The jobs list: rows change, arrive and leave as the server sends them (the filter in the URL
// is applied by the server); the location table is replaced as it changes.
'use strict';

(() => {
  const table = document.getElementById('jobs');
  const body = table.tBodies[0];
  const limit = Number(table.dataset.limit) || 200;
  const locations = document.getElementById('locations');
  const count = document.getElementById('count');

  function place(row) {
    const id = Number(row.dataset.id);
    for (const other of body.rows) {
      if (Number(other.dataset.id) < id) {
        body.insertBefore(row, other);
        return;
      }
    }
    body.appendChild(row);
  }

  jm.live(`/events${location.search}`, {
    rows(rows) {
      for (const { id, html } of rows) {
        const current = document.getElementById(`job-${id}`);
        if (html === null) {
          current?.remove();
          continue;
        }
        const template = document.createElement('template');
        template.innerHTML = html;
        const row = template.content.firstElementChild;
        if (current) current.replaceWith(row);
        else place(row);
      }
      while (body.rows.length > limit) body.deleteRow(body.rows.length - 1);
      document.getElementById('empty')?.remove();
      count.textContent = `${body.rows.length} job${body.rows.length === 1 ? '' : 's'} shown, updated live`;
    },
    locations(html) {
      jm.fill(locations, html);
    },
  });
})();
