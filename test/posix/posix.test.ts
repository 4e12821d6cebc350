// The POSIX suite through both guest front ends, each in a `xenfs guest` child process mounting the guest's export
// from a real dom0 process: the native one (its own FUSE connection, kernel passthrough) and fuse-native.
import { startDom0, hostPath, uniqueName } from '../helpers/fixtures.ts';
import { GuestMount } from '../helpers/fuse.ts';
import { posixSuite } from './posix-suite.ts';

const SECRET = 'posix suite secret';

for (const frontend of ['native', 'fuse-native'] as const) {
  posixSuite(`POSIX through the ${frontend} guest mount`, async () => {
    const domain = uniqueName('posix');
    const dom0 = await startDom0({ guests: [{ name: domain, secret: SECRET, exports: [{ name: 'home', path: 'home' }] }] });
    let mount: GuestMount;
    try {
      mount = await GuestMount.start({ dom0, domain, secret: SECRET, frontend });
    } catch (err) {
      await dom0.cleanup();
      throw err;
    }
    return {
      dir: mount.dir,
      hostDir: hostPath(dom0, 'home'),
      symlinkMetadata: mount.ready.frontend === 'native',
      async close() {
        await mount.cleanup();
        await dom0.cleanup();
      },
    };
  });
}
