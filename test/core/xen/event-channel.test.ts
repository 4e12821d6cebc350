// Event channels on the real native layer: wake-ups through libuv, coalescing, masking, and no busy waiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventChannel } from '../../../core/xen/event-channel.ts';
import { dupFd } from '../../../core/xen/control-socket.ts';

function pair() {
  const { local, remote } = EventChannel.allocatePair();
  // Both ends in one process; dom0's end gets its own descriptors, as it would through SCM_RIGHTS.
  const guest = new EventChannel(local);
  const dom0 = new EventChannel({ rx: dupFd(remote.rx), tx: dupFd(remote.tx) });
  return {
    guest,
    dom0,
    close: () => {
      guest.close();
      dom0.close();
    },
  };
}

test('a notification wakes the bound callback on the JS thread', async () => {
  const { guest, dom0, close } = pair();
  const got = new Promise<number>((resolve) => dom0.bind(resolve));
  guest.notify();
  assert.equal(await got, 1);
  close();
});

test('notifications sent before the handler runs coalesce into one wake-up', async () => {
  const { guest, dom0, close } = pair();
  const calls: number[] = [];
  dom0.bind((n) => calls.push(n));
  for (let i = 0; i < 10; i++) guest.notify();
  await sleep(50);
  assert.deepEqual(calls, [10]);
  close();
});

test('a masked channel records the event and delivers it once on unmask', async () => {
  const { guest, dom0, close } = pair();
  const calls: number[] = [];
  dom0.bind((n) => calls.push(n));
  dom0.mask();
  guest.notify();
  guest.notify();
  await sleep(50);
  assert.deepEqual(calls, [], 'nothing is delivered while masked');
  assert.equal(dom0.pending, 2);
  dom0.unmask();
  assert.deepEqual(calls, [2]);
  assert.equal(dom0.pending, 0);
  guest.notify();
  await sleep(20);
  assert.deepEqual(calls, [2, 1]);
  close();
});

test('waiting for an event costs no CPU (no spinning thread)', async () => {
  const { guest, dom0, close } = pair();
  let woken = false;
  dom0.bind(() => {
    woken = true;
  });
  const before = process.cpuUsage();
  await sleep(300);
  const used = process.cpuUsage(before);
  assert.ok(used.user + used.system < 60_000, `idle wait used ${(used.user + used.system) / 1000} ms of CPU`);
  guest.notify();
  await sleep(20);
  assert.ok(woken);
  close();
});

test('a closed channel refuses to bind and ignores notify', () => {
  const { guest, close } = pair();
  close();
  guest.notify();
  assert.throws(() => guest.bind(() => {}), /closed/);
});
