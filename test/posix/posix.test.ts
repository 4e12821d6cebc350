// The POSIX suite through the fuse-native front end: a real dom0 process, and `xenfs guest` mounting the guest's
// export in a child process.
import { startDom0, hostPath, uniqueName } from '../helpers/fixtures.ts';
import { GuestMount } from '../helpers/fuse.ts';
import { posixSuite } from './posix-suite.ts';

const SECRET = 'posix suite secret';

posixSuite('POSIX through the fuse-native guest mount', async () => {
  const domain = uniqueName('posix');
  const dom0 = await startDom0({ guests: [{ name: domain, secret: SECRET, exports: [{ name: 'home', path: 'home' }] }] });
  let mount: GuestMount;
  try {
    mount = await GuestMount.start({ dom0, domain, secret: SECRET });
  } catch (err) {
    await dom0.cleanup();
    throw err;
  }
  return {
    dir: mount.dir,
    hostDir: hostPath(dom0, 'home'),
    async close() {
      await mount.cleanup();
      await dom0.cleanup();
    },
  };
});
