// An instance's SSH host keys, as cloud-init prints them to the console at first boot:
//   -----BEGIN SSH HOST KEY KEYS-----
//   ssh-ed25519 AAAA… root@ip-10-0-0-5
//   -----END SSH HOST KEY KEYS-----
// Read through GetConsoleOutput, they let a new instance's key be checked, not just trusted.

export function hostKeysFromConsole(output: string): { type: string; key: string }[] {
  const match = /-----BEGIN SSH HOST KEY KEYS-----([\s\S]*?)-----END SSH HOST KEY KEYS-----/.exec(output);
  if (!match) return [];
  return match[1]
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 2 && /^(ssh-|ecdsa-)/.test(fields[0]))
    .map(([type, key]) => ({ type, key }));
}
