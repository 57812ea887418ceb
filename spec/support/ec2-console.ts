import { createHash } from 'node:crypto';
import { loopbackAddress } from './sshd.js';

// The console output of a loopback EC2 instance, as a real one prints it: kernel lines, then
// cloud-init's, with the SSH host keys between its BEGIN/END markers. JobManager reads the host
// keys from there (lib/backends/ec2/console-keys.ts), so the format must be the real one.

/** The first lines an instance prints as it boots (kernel, then cloud-init's network table). */
export function kernelLines(index: number): string[] {
  const address = loopbackAddress(index);
  return [
    '[    0.000000] Linux version 6.1.0-loopback (builder@loopback) (gcc 12.2.0) #1 SMP PREEMPT_DYNAMIC',
    '[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=LABEL=/ console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295',
    '[    0.412345] Hypervisor detected: Xen HVM',
    `[    2.345678] cloud-init[612]: Cloud-init v. 22.2.2 running 'init' at ${new Date().toUTCString()}. Up 2.35 seconds.`,
    '[    2.356789] cloud-init[612]: ci-info: ++++++++++++++++++++++++++++++++++++++Net device info++++++++++++++++++++++++++++++++++++++',
    `[    2.356789] cloud-init[612]: ci-info: |  eth0  | True | ${address} | 255.0.0.0 | global | 0a:00:00:00:00:${index.toString(16).padStart(2, '0')} |`,
  ];
}

/** What cloud-init prints once sshd has its keys: fingerprints, then the keys themselves. */
export function cloudInitLines(publicKeys: string[], withKeys: boolean): string[] {
  // cloud-init lists /etc/ssh/ssh_host_*_key.pub in file name order: ecdsa, ed25519, rsa.
  const keys = [...publicKeys].sort((a, b) => keyFileName(a).localeCompare(keyFileName(b)));
  const lines = [`Cloud-init v. 22.2.2 running 'modules:final' at ${new Date().toUTCString()}. Up 9.87 seconds.`];
  if (withKeys) {
    lines.push(
      'ec2: ',
      'ec2: #############################################################',
      'ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----',
      ...keys.map((line) => `ec2: ${fingerprintLine(line)}`),
      'ec2: -----END SSH HOST KEY FINGERPRINTS-----',
      'ec2: #############################################################',
      '-----BEGIN SSH HOST KEY KEYS-----',
      ...keys,
      '-----END SSH HOST KEY KEYS-----',
    );
  }
  lines.push(`Cloud-init v. 22.2.2 finished at ${new Date().toUTCString()}. Datasource DataSourceEc2Local.  Up 10.12 seconds`);
  return lines;
}

function keyFileName(line: string): string {
  const type = line.split(' ')[0];
  return type.startsWith('ecdsa') ? 'ecdsa' : type === 'ssh-ed25519' ? 'ed25519' : 'rsa';
}

/** As `ssh-keygen -l` prints it: bits, SHA256 of the key blob without padding, comment, type. */
function fingerprintLine(line: string): string {
  const [type, blob, comment] = line.split(/\s+/);
  const hash = createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
  const bits = type === 'ssh-ed25519' ? 256 : type.startsWith('ecdsa-sha2-nistp') ? Number(type.slice('ecdsa-sha2-nistp'.length)) : 3072;
  const label = type === 'ssh-ed25519' ? 'ED25519' : type.startsWith('ecdsa') ? 'ECDSA' : 'RSA';
  return `${bits} SHA256:${hash} ${comment ?? ''} (${label})`;
}
