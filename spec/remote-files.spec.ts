import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RemoteFileError, SshConnection } from '../lib/ssh/connection.js';
import { silentLogger } from '../lib/util/log.js';
import { SshHost } from './support/sshd.js';
import { removeDir, tempDir } from './support/temp.js';

// Copying files to and from a host (lib/ssh/remote-files.ts), over SFTP and, on a host whose
// sshd has no SFTP subsystem, over exec channels: the same bytes and the same errors either way.

(SshHost.available() ? describe : describe.skip)('files to and from a host, over SFTP or exec channels', function () {
  this.timeout(60_000);
  let dir: string;
  const hosts: Record<'sftp' | 'exec', SshHost> = {} as never;
  const connections: SshConnection[] = [];

  before(async function () {
    dir = tempDir('jm-files-');
    [hosts.sftp, hosts.exec] = await Promise.all([SshHost.start({ index: 6 }), SshHost.start({ index: 7, sftp: false })]);
    writeFileSync(join(dir, 'known_hosts'), `${hosts.sftp.knownHostsLine}\n${hosts.exec.knownHostsLine}\n`);
  });

  after(async function () {
    for (const connection of connections) connection.close();
    await Promise.all(Object.values(hosts).map((host) => host.stop()));
    removeDir(dir);
  });

  function connect(host: SshHost): SshConnection {
    const connection = new SshConnection({ name: host.name, hostname: host.address, port: host.port, username: host.username, key: host.clientKey }, { knownHosts: join(dir, 'known_hosts'), hostKeyPolicy: 'strict', log: silentLogger });
    connections.push(connection);
    return connection;
  }

  for (const kind of ['sftp', 'exec'] as const) {
    describe(`over ${kind}`, function () {
      it('is chosen once per connection, by what the host offers', async function () {
        const ssh = connect(hosts[kind]);
        const files = await ssh.files();
        expect(files.kind).to.equal(kind);
        expect(await ssh.files()).to.equal(files);
      });

      it('copies any bytes, of any size, both ways: every byte value, nothing, 5 MiB', async function () {
        const ssh = connect(hosts[kind]);
        const files = await ssh.files();
        const home = hosts[kind].home;
        const samples = { 'bytes.bin': Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256)), 'empty': Buffer.alloc(0), 'large.bin': randomBytes(5 * 1024 * 1024 + 3) };
        for (const [name, data] of Object.entries(samples)) {
          writeFileSync(join(dir, name), data);
          await files.put({ path: join(dir, name) }, `${home}/${kind}-${name}`);
          await files.get(`${home}/${kind}-${name}`, join(dir, `back-${kind}-${name}`));
          expect(readFileSync(join(dir, `back-${kind}-${name}`)).equals(data), name).to.equal(true);
        }
        await files.put({ data: 'made here\n' }, `${home}/${kind}-text`);
        expect(hosts[kind].run(`cat ${home}/${kind}-text`)).to.equal('made here\n');
      });

      it('says what is wrong with a file, as a RemoteFileError, and leaves no part file behind', async function () {
        const ssh = connect(hosts[kind]);
        const files = await ssh.files();
        const home = hosts[kind].home;
        const missing = await files.get(`${home}/no-such-file`, join(dir, `${kind}-missing`)).catch((err: unknown) => err);
        expect(missing).to.be.instanceOf(RemoteFileError);
        expect((missing as Error).message).to.equal('No such file');
        expect(existsSync(join(dir, `${kind}-missing`))).to.equal(false);
        expect(existsSync(join(dir, `${kind}-missing.jm-part`))).to.equal(false);
        writeFileSync(join(dir, 'big-upload'), randomBytes(4 * 1024 * 1024));
        const unwritable = await files.put({ path: join(dir, 'big-upload') }, `${home}/no/such/dir/file`).catch((err: unknown) => err);
        expect(unwritable).to.be.instanceOf(RemoteFileError);
        expect((unwritable as Error).message).to.match(/^writing .*\/no\/such\/dir\/file: /);
        expect(ssh.connected, 'the connection is fine').to.equal(true);
        expect(hosts[kind].run(`ls -a ${home}`)).not.to.contain('jm-part');
      });
    });
  }
});
