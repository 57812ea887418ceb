import { readFileSync } from 'node:fs';
import { errorMessage } from '../util/errors.js';
import { SshConfigError } from './errors.js';
import type { SshTarget } from './handshake.js';
import type { Ssh2 } from './load-ssh2.js';

// Which keys a connection offers, in order: the Key of the config or job file, the IdentityFile
// keys of ~/.ssh/config (or ssh's default ones), then every key of the ssh-agent (SSH_AUTH_SOCK).
// The files come first because a server counts failed keys (MaxAuthTries, 6 by default) and an
// agent holding many keys could use them all up before the right one.
//
// A key protected by a passphrase is never decrypted here (JobManager holds no passphrase): it is
// used through the agent (`ssh-add KEY`). Without an agent, such a key is a SshConfigError that
// says so, not a refusal by the host.

/** ssh2's authHandler entries (the `publickey` and `agent` methods). */
type AuthMethod =
  | { type: 'publickey'; username: string; key: Buffer }
  | { type: 'agent'; username: string; agent: string };

export interface Identities {
  methods: AuthMethod[];
  /** For messages: what was offered (`the key ~/.ssh/x, the ssh-agent's keys`). */
  offered: string;
  /** Key files passed over because a passphrase protects them. */
  encrypted: string[];
}

/** parseKey: ssh2's (lib/ssh/load-ssh2.ts), which only checks that a file is a key we can use. */
export function identitiesOf(target: SshTarget, parseKey: Ssh2['utils']['parseKey'], agent = process.env.SSH_AUTH_SOCK): Identities {
  const { name, username } = target;
  const methods: AuthMethod[] = [];
  const offered: string[] = [];
  const encrypted: string[] = [];
  const files = [...new Set([...(target.key ? [target.key] : []), ...(target.identityFiles ?? [])])];
  for (const file of files) {
    const explicit = file === target.key;
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (err) {
      // As ssh does, an IdentityFile that is not there is passed over; the Key named in the config or job file must be there.
      if (!explicit) continue;
      throw new SshConfigError(`${name}: cannot read the key ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}); check Key in the config or job file`);
    }
    const parsed = parseKey(data);
    if (parsed instanceof Error) {
      if (/encrypted|passphrase/i.test(parsed.message)) {
        encrypted.push(file);
        continue;
      }
      if (!explicit) continue;
      throw new SshConfigError(`${name}: the key ${file} cannot be used (${parsed.message}); give a private key in OpenSSH or PEM format, or use the ssh-agent`);
    }
    methods.push({ type: 'publickey', username, key: data });
    offered.push(`the key ${file}`);
  }
  if (agent) {
    methods.push({ type: 'agent', username, agent });
    offered.push('the ssh-agent\'s keys');
  }
  if (methods.length === 0) {
    if (encrypted.length) {
      throw new SshConfigError(`${name}: the key ${encrypted.join(', ')} is protected by a passphrase and no ssh-agent is running (SSH_AUTH_SOCK is not set): start one and add the key (eval "$(ssh-agent)"; ssh-add ${encrypted[0]}), then start the supervisor from that shell; or give a key without a passphrase`);
    }
    throw new SshConfigError(`${name}: no Key is configured and no ssh-agent is running (SSH_AUTH_SOCK is not set): set Key (in Hosts or the job file), IdentityFile in ~/.ssh/config, or start an ssh-agent`);
  }
  return { methods, offered: offered.join(', '), encrypted };
}

/** Why the host refused every key offered, and what to do. */
export function refusedMessage(target: SshTarget, identities: Identities): string {
  const hint = identities.encrypted.length ? `; ${identities.encrypted.join(', ')} is protected by a passphrase: add it to the agent (ssh-add ${identities.encrypted[0]})` : '';
  return `${target.username}@${target.hostname}:${target.port} refused ${identities.offered}; check Username and Key${hint}`;
}

