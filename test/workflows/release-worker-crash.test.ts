/**
 * A worker killed (SIGKILL) in the middle of a release, twice: while the release waits for approval, and
 * in the bake with timers pending. (The worker comes back before time moves on: on the test server, as on
 * Java's, a workflow task waiting for a worker holds the virtual clock.) A new worker process picks the release up from its history, and every
 * external side effect (CI runs, deployments, tags, traffic switches, the announcement, audit rows)
 * happens exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleaseResult } from '../../src/schemas/release';
import { approveSignal, qaResultSignal } from '../../src/workflows/definitions';
import { waitFor } from '../devserver/helpers';
import { liveDigests } from './release-invariants';
import {
  inPhase,
  recordHistory,
  startReleaseHarness,
  waitForStatus,
  type ReleaseHarness,
} from './release-harness';

let h: ReleaseHarness;
let settingsFile: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  h = await startReleaseHarness();
  settingsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-worker-')), 'settings.json');
  const address = h.env.address;
  fs.writeFileSync(
    settingsFile,
    JSON.stringify({
      address,
      namespace: h.env.namespace ?? 'default',
      config: h.sandbox.config,
      credentials: h.sandbox.credentials,
      local: h.sandbox.local,
    }),
  );
}, 120_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await h?.stop();
});

/** Starts a worker process and waits until it polls. */
async function startWorkerProcess(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'worker-process.ts')], {
    env: { ...process.env, WORKER_SETTINGS: settingsFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker process exited ${code}: ${stderr}`)));
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('a worker killed in the middle of a release', () => {
  it('is replaced, and the release ends as if nothing had happened, every side effect once', async () => {
    const version = '6.0.0';
    const digest = await h.sandbox.pushImage(version);
    const before = await liveDigests(h.sandbox);
    const deploymentsBefore = h.sandbox.fakes.coolify.deployments.length;
    const runsBefore = h.sandbox.fakes.ci.runs.length;

    let worker = await startWorkerProcess();
    const handle = await h.startRelease({ version });
    await waitForStatus(h, handle, inPhase('qa-gate'), 'the QA gate', 60_000);
    await handle.signal(qaResultSignal, { passed: true, reporter: 'qa-bot' });
    await waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval', 60_000);

    await kill(worker);
    await handle.signal(approveSignal, { approver: 'tech-lead' });
    worker = await startWorkerProcess();
    await waitForStatus(
      h,
      handle,
      (s) => s.phase === 'baking' && s.bakeSamples.length >= 8,
      'the bake',
      90_000,
    );
    // Time stands still between polls; once the samples in flight are done, only timers are pending.
    await waitFor(
      async () => (await handle.describe()).raw.pendingActivities?.length === 0,
      'no activity in flight',
    );
    await kill(worker);
    // The new worker starts with timers pending and the bake half done; it replays and carries on.
    worker = await startWorkerProcess();
    const { status } = (await handle.result()) as ReleaseResult;
    await kill(worker);
    await recordHistory(h, `release-v${version}`, 'release-worker-killed');

    expect(status.phase, status.outcome ?? '').toBe('released');
    expect(Object.values(await liveDigests(h.sandbox))).toEqual(Object.values(before).map(() => digest));

    // CI: one build and one smoke run.
    expect(h.sandbox.fakes.ci.runs.length - runsBefore).toBe(2);
    // Coolify: each staging application and each idle production colour deployed once.
    const deployments = h.sandbox.fakes.coolify.deployments.slice(deploymentsBefore);
    const perApplication = new Map<string, number>();
    for (const d of deployments)
      perApplication.set(d.application.uuid, (perApplication.get(d.application.uuid) ?? 0) + 1);
    expect(
      [...perApplication.values()].every((n) => n === 1),
      JSON.stringify([...perApplication]),
    ).toBe(true);
    expect(perApplication.size).toBe(2 * Object.keys(before).length);
    // One announcement, one annotation.
    expect(
      h.sandbox.fakes.telegram.sent.filter((m) => m.text.startsWith(`Released v${version}`)),
    ).toHaveLength(1);
    expect(
      h.sandbox.fakes.grafana.annotations.filter((a) => a.text.includes(`v${version} live`)),
    ).toHaveLength(1);
    // One switch per service: a traffic step each, completed once.
    expect(status.steps.filter((s) => s.name.startsWith('production: switch')).length).toBe(
      Object.keys(before).length,
    );
    // Audit rows: one per transition, none doubled by the replays.
    const audit = await h.sandbox.auditRows(`release-v${version}`);
    const seqs = audit.map((r) => (r.details as { seq: number }).seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(audit.filter((r) => r.action === 'phase' && r.decision === 'released')).toHaveLength(1);
    expect(await h.sandbox.tags()).toEqual(expect.arrayContaining([`v${version}-rc.1`, `v${version}`]));
  }, 240_000);
});
