// The instances this deployment launched, one record per launch request, kept in the Redis hash
// Instances (token → JSON, lib/store/registry-records.ts; read and written through Store). The
// record is written before RunInstances is called, with the ClientToken it will use: a launch
// interrupted by a crash is asked for again with the same token, and EC2 answers with the
// instance it already made instead of making a second one.
//
//   requested ─RunInstances─> pending ─running, has an address─> booting ─SSH answers─> ready
//   ready ─idle for IdleTimeout─> retiring ─still idle─> terminating ─terminated─> (record gone)
//   any ─EC2 says shutting-down, terminated, stopping or stopped, or a spot notice─> lost
//   lost ─its jobs placed again (lost-instance.ts), a stopped one terminated─> terminating

export type { InstanceRecord, InstanceState } from '../../store/registry-records.js';

/** The host name an instance goes by once it is ready (its slots are RemoteJobs:<name>). */
export function instanceHostName(instanceId: string): string {
  return `ec2-${instanceId}`;
}
