// Waiting for a condition in tests, with a deadline that names what was awaited. A module of its own, free of
// the native addon, so tests that need no dom0 (Redis, the host watcher) can use it too.

/** Resolves once `cond()` is true; rejects naming `what` after `ms`. Polls every 5 ms. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
