import { JobManagerError } from '../util/errors.js';

// What can go wrong with an SSH host, as the caller must act on it: fix the config (the key, the
// host key) or wait for the host (unreachable: the state of its jobs is unknown until it answers).

/** The host's key is not on file, does not match it, or is revoked: the message says which and what to run. */
export class HostKeyError extends JobManagerError {
  override readonly code = 'JM_HOST_KEY';
}

/** Connecting cannot work until the config changes: the key cannot be read or is refused. */
export class SshConfigError extends JobManagerError {
  override readonly code = 'JM_SSH_CONFIG';
}

/** The host could not be reached (or the connection broke): the state of its jobs is unknown. */
export class SshUnavailableError extends JobManagerError {
  override readonly code = 'JM_SSH_UNAVAILABLE';
}

/** A file could not be copied to or from a host (no such file, no room, a size that does not match); the host itself answers. */
export class RemoteFileError extends JobManagerError {
  override readonly code = 'JM_REMOTE_FILE';
}
