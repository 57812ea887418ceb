// Hosts and instances: both tables are replaced as the server sends them.
'use strict';

(() => {
  const hosts = document.getElementById('hosts');
  const instances = document.getElementById('instances');
  jm.live('/events?view=hosts', {
    hosts(data) {
      jm.fill(hosts, data.hosts);
      jm.fill(instances, data.instances);
    },
  });
})();
