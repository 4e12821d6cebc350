// The server's policy and snapshot hooks as services see them before the file server enforces them: every call
// that would need enforcement fails with XENFS_ERR_UNSUPPORTED, so a service can never believe a guest is kept
// from a file, or paused, when it is not. The enforcing side comes with the services that need it (the scanner's
// refusals at open, the backup's quiesce).
import { XenfsError } from '../errors.ts';
import type { PolicyHooks, SnapshotHooks } from './plugin-api.ts';

function unsupported(what: string): Promise<never> {
  return Promise.reject(new XenfsError('XENFS_ERR_UNSUPPORTED', `${what}: this dom0 does not enforce it yet`));
}

export function unavailableHooks(): { policy: PolicyHooks; snapshots: SnapshotHooks } {
  return {
    policy: {
      deny: () => unsupported('policy.deny'),
      allow: () => unsupported('policy.allow'),
      // Nothing is denied, and saying so is true.
      denied: () => Promise.resolve([]),
    },
    snapshots: { quiesce: () => unsupported('snapshots.quiesce') },
  };
}
