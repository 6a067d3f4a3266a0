/**
 * Freeze windows and the hotfix route (L3): a release approved inside a freeze waits durably until it
 * ends, or goes through with two override approvals; a hotfix skips the QA gate and the release candidate
 * tag, needs the hotfix approval count, and passes windows that allow hotfixes.
 */
import { describe, expect, it } from 'vitest';
import type { ReleaseResult } from '../../src/schemas/release';
import { approveSignal, cancelSignal, qaResultSignal } from '../../src/workflows/definitions';
import { expectNoTrafficBeforeApproval, liveDigests } from './release-invariants';
import { inPhase, recordHistory, waitForStatus } from './release-harness';
import { toApproval, useReleaseHarness } from './use-release-harness';

const windowEnd = Date.now() + 3 * 86_400_000;

const h = useReleaseHarness({
  configure: (config) => ({
    ...config,
    freezeWindows: [
      {
        name: 'year-end-sale',
        reason: 'traffic peak',
        environments: ['production'],
        timezone: undefined,
        allowHotfixes: true,
        kind: 'once',
        start: new Date(Date.now() - 3_600_000).toISOString(),
        end: new Date(windowEnd).toISOString(),
      },
    ],
  }),
});

describe('a freeze window', () => {
  it('holds an approved release until two approvers override it', async () => {
    const before = await liveDigests(h.sandbox);
    await h.sandbox.pushImage('5.0.0');
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '5.0.0' });
      await toApproval(h, handle);
      await handle.signal(approveSignal, { approver: 'tech-lead' });
      const frozen = await waitForStatus(h, handle, inPhase('freeze-wait'), 'the freeze');
      expect(frozen.freeze?.window).toBe('year-end-sale');
      expect(Date.parse(frozen.freeze!.until)).toBe(windowEnd);
      await h.env.sleep('1 day');
      expect((await h.status(handle)).phase).toBe('freeze-wait');
      expect(await liveDigests(h.sandbox)).toEqual(before);
      await handle.signal(approveSignal, { approver: 'ops-lead', freezeOverride: true });
      await handle.signal(approveSignal, { approver: 'ops-lead', freezeOverride: true });
      await handle.signal(approveSignal, { approver: 'qa-lead' });
      await waitForStatus(h, handle, (s) => s.refused.length === 2, 'two refused overrides');
      await handle.signal(approveSignal, { approver: 'qa-lead', freezeOverride: true });
      return (await handle.result()) as ReleaseResult;
    });
    await recordHistory(h, 'release-v5.0.0', 'release-freeze-override');
    expect(status.phase).toBe('released');
    expect(status.approvals.filter((a) => a.decision === 'freeze-override').map((a) => a.approver)).toEqual([
      'ops-lead',
      'qa-lead',
    ]);
    expect(status.steps.find((s) => s.name === 'freeze window year-end-sale')?.detail).toBe(
      'overridden by ops-lead and qa-lead',
    );
  }, 120_000);

  it('a cancel while the release waits out the window puts staging back; production is untouched', async () => {
    const before = await liveDigests(h.sandbox);
    const stagingBefore = h.sandbox.stagingTags();
    await h.sandbox.pushImage('5.0.3');
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '5.0.3' });
      await toApproval(h, handle);
      await handle.signal(approveSignal, { approver: 'tech-lead' });
      await waitForStatus(h, handle, inPhase('freeze-wait'), 'the freeze');
      await handle.signal(cancelSignal, { requestedBy: 'alice', reason: 'wait for January instead' });
      return (await handle.result()) as ReleaseResult;
    });
    await recordHistory(h, 'release-v5.0.3', 'release-cancel-freeze-wait');
    expect(status.phase).toBe('cancelled');
    expect(status.outcome).toContain('during freeze-wait');
    expect(status.steps.find((s) => s.name === 'freeze window year-end-sale')?.status).toBe('cancelled');
    expect(status.compensations.map((c) => [c.name.replace(/ on .*/, ''), c.status])).toEqual(
      Object.keys(stagingBefore)
        .map((service) => [`redeploy staging ${service}`, 'completed'])
        .reverse(),
    );
    expect(await liveDigests(h.sandbox)).toEqual(before);
    expect(h.sandbox.stagingTags()).toEqual(stagingBefore);
    expectNoTrafficBeforeApproval(status);
  }, 120_000);

  it('lets an approved release wait durably until the window ends', async () => {
    await h.sandbox.pushImage('5.0.1');
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '5.0.1' });
      await toApproval(h, handle);
      await handle.signal(approveSignal, { approver: 'tech-lead' });
      await waitForStatus(h, handle, inPhase('freeze-wait'), 'the freeze');
      return (await handle.result()) as ReleaseResult;
    });
    await recordHistory(h, 'release-v5.0.1', 'release-freeze-wait');
    expect(status.phase).toBe('released');
    const freeze = status.steps.find((s) => s.name === 'freeze window year-end-sale')!;
    expect(freeze.detail).toBe('window ended');
    expect(Date.parse(freeze.endedAt!)).toBeGreaterThanOrEqual(windowEnd);
    const deploy = status.steps.find((s) => s.name.startsWith('production deploy'))!;
    expect(Date.parse(deploy.startedAt)).toBeGreaterThanOrEqual(windowEnd);
  }, 120_000);
});

describe('the hotfix route', () => {
  it('skips the QA gate and the RC tag, passes a window that allows hotfixes, and is still approved and audited', async () => {
    const digest = await h.sandbox.pushImage('5.0.2');
    const { status, tag } = await h.withWorker(async () => {
      const handle = await h.startRelease({
        version: '5.0.2',
        hotfix: true,
        changes: { added: [], fixed: ['Checkout total rounding'], changed: [] },
      });
      const waiting = await waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval');
      expect(waiting.requiredApprovals).toBe(1);
      await handle.signal(qaResultSignal, { passed: true, reporter: 'qa-bot' });
      await handle.signal(approveSignal, { approver: 'tech-lead', comment: 'hotfix' });
      return (await handle.result()) as ReleaseResult;
    });
    await recordHistory(h, 'release-v5.0.2', 'release-hotfix');
    expect(status.phase).toBe('released');
    expect(status.hotfix).toBe(true);
    expect(tag).toBe('v5.0.2');
    expect(status.rcTag).toBeNull();
    expect(status.steps.find((s) => s.name === 'qa-gate')?.status).toBe('skipped');
    expect(status.steps.some((s) => s.name.startsWith('freeze window'))).toBe(false);
    expect(status.refused.map((r) => r.signal)).toEqual(['qaResult']);
    expect(Object.values(await liveDigests(h.sandbox)).every((d) => d === digest)).toBe(true);
    expectNoTrafficBeforeApproval(status);
    const audit = await h.sandbox.auditRows('release-v5.0.2');
    expect(audit.some((r) => r.action === 'approved' && r.actor === 'tech-lead')).toBe(true);
  }, 120_000);
});
