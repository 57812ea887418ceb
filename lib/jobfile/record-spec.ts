import type { JobRecord } from '../store/job-record.js';
import { validateJobSpec, type JobSpec } from './job-spec.js';

/**
 * A job's spec: the one its record holds while it is live, else, for a finished job whose record
 * was compacted (lua/compactJobs-N.lua keeps the definition as written, not the spec), the spec
 * made again from that definition, as the manager made it. Null when neither gives one (a job
 * that was rejected, or one whose definition no longer reads).
 */
export function specOfRecord(record: JobRecord): JobSpec | null {
  if (record.spec) return record.spec;
  if (record.raw === null || record.raw === undefined) return null;
  try {
    return validateJobSpec(record.raw, { file: record.file, baseDir: record.baseDir || undefined });
  } catch {
    return null;
  }
}
