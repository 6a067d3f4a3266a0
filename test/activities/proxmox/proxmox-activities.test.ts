import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createProxmoxActivities,
  type ProxmoxActivitiesOptions,
} from '../../../src/activities/proxmox/proxmox-activities';
import { ProxmoxFake } from '../../../src/sandbox/fakes/proxmox-fake';

/** An activity context whose logger stays quiet about the failures these tests provoke on purpose. */
const quietEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });

/** `env.run` typed with the activity's own input and result. */
function runIn<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run<A, R, typeof fn>(fn, ...args);
}

const NODE = 'pve1';
const TOKEN_ID = 'release@pve!temporal';
const TOKEN_SECRET = '5f2c9a7e-8d41-4b6a-9e0f-3c7d1a2b4e6f';

let fake: ProxmoxFake;

/** A port on 127.0.0.1 that nothing listens on (fetch refuses well-known ports such as 9). */
async function closedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

beforeEach(async () => {
  fake = await ProxmoxFake.start({ node: NODE, tokenId: TOKEN_ID, tokenSecret: TOKEN_SECRET });
  fake.addGuest({ vmid: 120, name: 'aceh-commerce-prod-blue' });
  fake.addGuest({ vmid: 9010, name: 'aceh-commerce-v1-1-0', template: true });
});

afterEach(async () => {
  const violations = [...fake.violations];
  await fake.stop();
  expect(violations).toEqual([]);
});

function pve(overrides: Partial<ProxmoxActivitiesOptions> = {}) {
  return createProxmoxActivities({
    baseUrl: fake.baseUrl,
    tokenId: TOKEN_ID,
    tokenSecret: TOKEN_SECRET,
    node: NODE,
    pollIntervalMs: 5,
    ...overrides,
  });
}

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  runIn(quietEnv(), fn, ...args);

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

describe('snapshotVm', () => {
  it('snapshots the VM and the task ends OK', async () => {
    const a = pve();
    const ref = await run(a.snapshotVm, {
      vmid: 120,
      snapname: 'release-v1_2_0',
      description: 'before v1.2.0',
    });
    expect(ref).toMatchObject({ vmid: 120, node: NODE, started: true });
    expect(ref.upid).toMatch(/^UPID:pve1:.*:qmsnapshot:120:/);
    const done = await run(a.waitForTask, { upid: ref.upid! });
    expect(done).toMatchObject({ exitstatus: 'OK', type: 'qmsnapshot', id: '120' });
    expect(fake.guests.get(120)?.snapshots.get('release-v1_2_0')?.description).toBe('before v1.2.0');
    const [post] = fake.callsTo('POST', '/nodes/{node}/qemu/{vmid}/snapshot');
    expect(post?.params).toMatchObject({ snapname: 'release-v1_2_0', description: 'before v1.2.0' });
  });

  it('skips when the snapshot exists, without a second POST', async () => {
    fake.addGuest({ vmid: 121, name: 'green', snapshots: ['release-v1_2_0'] });
    const ref = await run(pve().snapshotVm, { vmid: 121, snapname: 'release-v1_2_0' });
    expect(ref).toEqual({ vmid: 121, node: NODE, upid: null, started: false });
    expect(fake.callsTo('POST', '/nodes/{node}/qemu/{vmid}/snapshot')).toHaveLength(0);
  });

  it('returns the running task when a retry finds the snapshot under way', async () => {
    fake.scriptNextTask(10);
    const a = pve();
    const first = await run(a.snapshotVm, { vmid: 120, snapname: 'nightly' });
    const retry = await run(a.snapshotVm, { vmid: 120, snapname: 'nightly' });
    expect(retry).toEqual({ vmid: 120, node: NODE, upid: first.upid, started: false });
    expect(fake.callsTo('POST', '/nodes/{node}/qemu/{vmid}/snapshot')).toHaveLength(1);
  });

  it('fails with NotFound for an unknown VM and InvalidInput for a name Proxmox refuses', async () => {
    expect((await failureOf(run(pve().snapshotVm, { vmid: 777, snapname: 'x1' }))).type).toBe('NotFound');
    const bad = await failureOf(run(pve().snapshotVm, { vmid: 120, snapname: 'v1.2.0' }));
    expect(bad.type).toBe('InvalidInput');
    expect(bad.message).toContain('no dots');
    expect(fake.calls).toHaveLength(1); // only the lookup of 777
  });
});

describe('waitForTask', () => {
  it('heartbeats every poll and resumes the count from the last heartbeat', async () => {
    fake.scriptNextTask(3);
    const a = pve();
    const { upid } = await run(a.snapshotVm, { vmid: 120, snapname: 'polled' });
    const env = quietEnv({ attempt: 2, heartbeatDetails: { upid, polls: 4, status: 'running' } });
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const done = await runIn(env, a.waitForTask, { upid: upid! });
    expect(done.polls).toBe(7);
    expect(beats).toEqual([
      { upid, polls: 5, status: 'running' },
      { upid, polls: 6, status: 'running' },
      { upid, polls: 7, status: 'stopped' },
    ]);
  });

  it.each([
    ['WARNINGS: 1', 'TASK WARNINGS: 1'],
    [
      "clone failed: storage 'local-lvm' does not exist",
      "TASK ERROR: clone failed: storage 'local-lvm' does not exist",
    ],
  ])('fails with OperationFailed when the task ends with %j', async (exitstatus, lastLine) => {
    fake.scriptNextTask(2, exitstatus);
    const a = pve();
    const { upid } = await run(a.snapshotVm, { vmid: 120, snapname: 'will-fail' });
    const f = await failureOf(run(a.waitForTask, { upid: upid! }));
    expect(f.type).toBe('OperationFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(exitstatus);
    const details = f.details?.[0] as { exitstatus: string; log: string[] };
    expect(details.exitstatus).toBe(exitstatus);
    expect(details.log.at(-1)).toBe(lastLine);
  });

  it('stops polling when cancelled', async () => {
    fake.scriptNextTask(1000);
    const a = pve({ pollIntervalMs: 60_000 });
    const { upid } = await run(a.snapshotVm, { vmid: 120, snapname: 'long' });
    const env = quietEnv();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const waiting = runIn(env, a.waitForTask, { upid: upid! });
    await vi.waitFor(() => expect(beats).toHaveLength(1));
    env.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
  });

  it('rejects something that is not a UPID', async () => {
    const f = await failureOf(run(pve().waitForTask, { upid: 'not-a-upid' }));
    expect(f.type).toBe('InvalidInput');
  });
});

describe('convertToTemplate', () => {
  it('converts, then skips once the VM is a template', async () => {
    const a = pve();
    const ref = await run(a.convertToTemplate, { vmid: 120 });
    expect(ref.started).toBe(true);
    await run(a.waitForTask, { upid: ref.upid! });
    expect(fake.guests.get(120)?.template).toBe(true);
    const again = await run(a.convertToTemplate, { vmid: 120 });
    expect(again).toEqual({ vmid: 120, node: NODE, upid: null, started: false });
    expect(fake.callsTo('POST', '/nodes/{node}/qemu/{vmid}/template')).toHaveLength(1);
  });

  it('returns the running conversion to a retry', async () => {
    fake.scriptNextTask(10);
    const a = pve();
    const first = await run(a.convertToTemplate, { vmid: 120 });
    const retry = await run(a.convertToTemplate, { vmid: 120 });
    expect(retry.upid).toBe(first.upid);
    expect(retry.started).toBe(false);
  });
});

describe('cloneVm', () => {
  it('clones the template and skips when the clone exists with the same name', async () => {
    const a = pve();
    const ref = await run(a.cloneVm, { vmid: 9010, newid: 130, name: 'aceh-commerce-rollback', full: true });
    expect(ref).toMatchObject({ vmid: 130, started: true });
    const [post] = fake.callsTo('POST', '/nodes/{node}/qemu/{vmid}/clone');
    expect(post?.params).toMatchObject({ newid: '130', name: 'aceh-commerce-rollback', full: '1' });
    await run(a.waitForTask, { upid: ref.upid! });
    expect(fake.guests.get(130)?.name).toBe('aceh-commerce-rollback');
    const again = await run(a.cloneVm, {
      vmid: 9010,
      newid: 130,
      name: 'aceh-commerce-rollback',
      full: true,
    });
    expect(again).toEqual({ vmid: 130, node: NODE, upid: null, started: false });
  });

  it('returns the running clone to a retry', async () => {
    fake.scriptNextTask(10);
    const a = pve();
    const first = await run(a.cloneVm, { vmid: 9010, newid: 131, name: 'clone-b' });
    const retry = await run(a.cloneVm, { vmid: 9010, newid: 131, name: 'clone-b' });
    expect(retry.upid).toBe(first.upid);
  });

  it('refuses a newid taken by another VM, and a missing source', async () => {
    const taken = await failureOf(run(pve().cloneVm, { vmid: 9010, newid: 120, name: 'something-else' }));
    expect(taken.type).toBe('PolicyViolation');
    expect(taken.message).toContain('aceh-commerce-prod-blue');
    expect((await failureOf(run(pve().cloneVm, { vmid: 555, newid: 556 }))).type).toBe('NotFound');
    expect((await failureOf(run(pve().cloneVm, { vmid: 9010, newid: 9010 }))).type).toBe('InvalidInput');
  });
});

describe('deleteVm', () => {
  it('deletes the VM, and an absent VM is already done', async () => {
    const a = pve();
    const ref = await run(a.deleteVm, {
      vmid: 9010,
      expectTemplate: true,
      expectName: 'aceh-commerce-v1-1-0',
      purge: true,
    });
    expect(ref.started).toBe(true);
    const [del] = fake.callsTo('DELETE', '/nodes/{node}/qemu/{vmid}');
    expect(del?.params).toMatchObject({ purge: '1' });
    await run(a.waitForTask, { upid: ref.upid! });
    expect(fake.guests.has(9010)).toBe(false);
    const again = await run(a.deleteVm, { vmid: 9010 });
    expect(again).toEqual({ vmid: 9010, node: NODE, upid: null, started: false });
  });

  it('returns the running destroy to a retry', async () => {
    fake.scriptNextTask(10);
    const a = pve();
    const first = await run(a.deleteVm, { vmid: 9010 });
    const retry = await run(a.deleteVm, { vmid: 9010 });
    expect(retry).toMatchObject({ upid: first.upid, started: false });
  });

  it('refuses to delete a VM that is not the expected one', async () => {
    const name = await failureOf(run(pve().deleteVm, { vmid: 120, expectName: 'aceh-commerce-v1-1-0' }));
    expect(name.type).toBe('PolicyViolation');
    const template = await failureOf(run(pve().deleteVm, { vmid: 120, expectTemplate: true }));
    expect(template.type).toBe('PolicyViolation');
    expect(fake.guests.has(120)).toBe(true);
  });
});

describe('Proxmox failures', () => {
  it('reports a wrong token as Unauthorized without the secret', async () => {
    const f = await failureOf(
      run(pve({ tokenSecret: 'wrong-secret-value' }).snapshotVm, { vmid: 120, snapname: 'a1' }),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).not.toContain('wrong-secret-value');
    expect(f.message).not.toContain(TOKEN_SECRET);
  });

  it('reports a missing privilege (403) as Unauthorized with what Proxmox said', async () => {
    fake.failNext((c) => c.method === 'POST', {
      status: 403,
      message: 'Permission check failed (/vms/120, VM.Snapshot)',
    });
    const f = await failureOf(run(pve().snapshotVm, { vmid: 120, snapname: 'a1' }));
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('VM.Snapshot');
  });

  it('reports a server error (500) and a proxy error (596) as retryable UpstreamUnavailable', async () => {
    fake.failNext((c) => c.method === 'POST', {
      status: 500,
      message: "can't lock file '/var/lock/qemu-server/lock-120.conf' - got timeout",
    });
    const f = await failureOf(run(pve().snapshotVm, { vmid: 120, snapname: 'a1' }));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain("can't lock file");
    fake.failNext((c) => c.route === '/nodes/{node}/tasks/{upid}/status', {
      status: 596,
      message: 'Connection timed out',
    });
    const { upid } = await run(pve().snapshotVm, { vmid: 120, snapname: 'a2' });
    expect((await failureOf(run(pve().waitForTask, { upid: upid! }))).type).toBe('UpstreamUnavailable');
  });

  it('reports an unreachable server as UpstreamUnavailable', async () => {
    const port = await closedPort();
    const f = await failureOf(
      run(pve({ baseUrl: `http://127.0.0.1:${port}/api2/json` }).snapshotVm, { vmid: 120, snapname: 'a1' }),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.message).toContain('ECONNREFUSED');
  });

  it('reports an answer that breaks the documented shape as ContractViolation', async () => {
    const broken: typeof fetch = (url, init) =>
      (typeof url === 'string' ? url : url instanceof URL ? url.href : url.url).includes('/cluster/resources')
        ? Promise.resolve(new Response(JSON.stringify({ data: { vmid: 120 } }), { status: 200 }))
        : fetch(url, init);
    const f = await failureOf(run(pve({ fetch: broken }).snapshotVm, { vmid: 120, snapname: 'a1' }));
    expect(f.type).toBe('ContractViolation');
  });
});

describe('the Proxmox fake itself', () => {
  it('flags requests that break the API description', async () => {
    const headers = {
      authorization: `PVEAPIToken=${TOKEN_ID}=${TOKEN_SECRET}`,
      'content-type': 'application/x-www-form-urlencoded',
    };
    const res = await fetch(`${fake.baseUrl}/nodes/${NODE}/qemu/120/snapshot`, {
      method: 'POST',
      headers,
      body: new URLSearchParams({ snapname: 'v1.2.0', vmstate: 'maybe', colour: 'blue' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Record<string, string> };
    expect(Object.keys(body.errors).sort()).toEqual(['colour', 'snapname', 'vmstate']);
    const missing = await fetch(`${fake.baseUrl}/nodes/${NODE}/qemu/120/clone`, {
      method: 'POST',
      headers,
      body: '',
    });
    expect(missing.status).toBe(400);
    const unknown = await fetch(`${fake.baseUrl}/nodes/${NODE}/qemu/120/no-such-thing`, { headers });
    expect(unknown.status).toBe(501);
    expect(fake.violations.length).toBeGreaterThanOrEqual(5);
    fake.violations.length = 0;
  });
});
