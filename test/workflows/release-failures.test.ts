/**
 * A release that does not go through: rejection, refused signals, QA and staging smoke failures, the
 * automatic rollback when the error rate breaches in the bake (M4), an inconclusive bake decided by a
 * human, and a cancellation in each phase with the compensations of what was done, in reverse.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import type { ReleaseResult, ReleaseStatus } from '../../src/schemas/release';
import { approveSignal, cancelSignal, qaResultSignal, rejectSignal } from '../../src/workflows/definitions';
import { waitFor } from '../devserver/helpers';
import {
  expectCompensations,
  expectNoContractViolations,
  expectNoTrafficBeforeApproval,
  liveDigests,
} from './release-invariants';
import { inPhase, recordHistory, waitForStatus } from './release-harness';
import { toApproval, useReleaseHarness } from './use-release-harness';

const h = useReleaseHarness();

const pass = { passed: true, reporter: 'qa-bot' };

async function result(handle: WorkflowHandle): Promise<ReleaseResult> {
  return (await handle.result()) as ReleaseResult;
}

describe('a release that stops before production', () => {
  it('is rejected by an approver: nothing reaches production, the rejection is recorded', async () => {
    await h.sandbox.pushImage('3.0.1');
    const before = await liveDigests(h.sandbox);
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '3.0.1' });
      await toApproval(h, handle);
      await handle.signal(rejectSignal, { approver: 'qa-lead', reason: 'checkout regression found' });
      return result(handle);
    });
    await recordHistory(h, 'release-v3.0.1', 'release-rejected');
    expect(status.phase).toBe('rejected');
    expect(status.outcome).toContain('checkout regression found');
    expect(status.approvals).toEqual([
      expect.objectContaining({ approver: 'qa-lead', decision: 'rejected' }),
    ]);
    expect(await liveDigests(h.sandbox)).toEqual(before);
    const audit = await h.sandbox.auditRows('release-v3.0.1');
    expect(audit.some((r) => r.action === 'rejected' && r.actor === 'qa-lead')).toBe(true);
    expectNoContractViolations(h.sandbox);
  }, 90_000);

  it('refuses self-approval, unknown approvers, malformed payloads and wrong digests, and carries on', async () => {
    await h.sandbox.pushImage('3.0.2');
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '3.0.2', requestedBy: 'tech-lead' });
      await toApproval(h, handle);
      await handle.signal(approveSignal, { approver: 'tech-lead' });
      await handle.signal(approveSignal, { approver: 'mallory' });
      await handle.signal(approveSignal, { approver: 42, comment: ['not', 'a', 'comment'] });
      await handle.signal(approveSignal, 'yes please');
      await handle.signal(approveSignal, { approver: 'ops-lead', digest: `sha256:${'0'.repeat(64)}` });
      await handle.signal(qaResultSignal, { passed: 'maybe' });
      const refused = await waitForStatus(h, handle, (s) => s.refused.length === 6, 'six refusals');
      expect(refused.phase).toBe('awaiting-approval');
      expect(refused.approvals).toEqual([]);
      await handle.signal(approveSignal, { approver: 'ops-lead', comment: 'reviewed' });
      return result(handle);
    });
    await recordHistory(h, 'release-v3.0.2', 'release-refused-signals');
    expect(status.phase).toBe('released');
    const reasons = status.refused.map((r) => [r.signal, r.from, r.reason]);
    expect(reasons[0]).toEqual(['approve', 'tech-lead', expect.stringContaining('separation of duties')]);
    expect(reasons[1]).toEqual(['approve', 'mallory', expect.stringContaining('not an allowed approver')]);
    expect(reasons[2]).toEqual(['approve', null, expect.stringContaining('malformed payload')]);
    expect(reasons[3]).toEqual(['approve', null, expect.stringContaining('malformed payload')]);
    expect(reasons[4]).toEqual(['approve', 'ops-lead', expect.stringContaining('bound to')]);
    expect(reasons[5]).toEqual(['qaResult', null, expect.stringContaining('malformed payload')]);
    expect(status.approvals.map((a) => a.approver)).toEqual(['ops-lead']);
    expectNoTrafficBeforeApproval(status);
    const audit = await h.sandbox.auditRows('release-v3.0.2');
    expect(audit.filter((r) => r.decision === 'refused')).toHaveLength(6);
  }, 120_000);

  it('fails at the QA gate when QA reports a failure, and puts staging back', async () => {
    await h.sandbox.pushImage('3.0.3');
    const stagingBefore = h.sandbox.stagingTags();
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '3.0.3' });
      await waitForStatus(h, handle, inPhase('qa-gate'), 'the QA gate');
      expect(Object.values(h.sandbox.stagingTags())).toEqual(Object.values(stagingBefore).map(() => '3.0.3'));
      await handle.signal(qaResultSignal, {
        passed: false,
        reporter: 'qa-bot',
        reportUrl: 'https://qa.example/run/9',
        summary: '3 Playwright tests failed',
      });
      return result(handle);
    });
    await recordHistory(h, 'release-v3.0.3', 'release-qa-failed');
    expect(status.phase).toBe('failed');
    expect(status.outcome).toContain('3 Playwright tests failed');
    expect(status.compensations.length).toBeGreaterThan(0);
    expect(status.compensations.every((c) => c.status === 'completed')).toBe(true);
    expect(h.sandbox.stagingTags()).toEqual(stagingBefore);
  }, 90_000);

  it('fails when the staging smoke test fails, before any QA or approval', async () => {
    await h.sandbox.pushImage('3.0.4');
    h.sandbox.fakes.ci.nextConclusions.push('success', 'failure');
    const { status } = await h.withWorker(async () => result(await h.startRelease({ version: '3.0.4' })));
    await recordHistory(h, 'release-v3.0.4', 'release-smoke-failed');
    expect(status.phase).toBe('failed');
    expect(status.outcome).toMatch(/staging-smoke/);
    expect(status.steps.find((s) => s.name === 'ci smoke test on staging')?.status).toBe('failed');
    expect(status.approvals).toEqual([]);
    expect(status.rcTag).toBeNull();
  }, 90_000);
});

describe('the bake (M4)', () => {
  it('rolls back automatically when the error rate rises above 5% in minute 7, to the exact previous digest', async () => {
    const digest = await h.sandbox.pushImage('3.1.0');
    const before = await liveDigests(h.sandbox);
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '3.1.0' });
      await toApproval(h, handle);
      let bakeStart = 0;
      h.sandbox.fakes.prometheus.setTraffic('storefront', (atMs: number, windowSeconds: number) => {
        const requests = 2000 * (windowSeconds / 60);
        if (!bakeStart) return { requests, errors: requests * 0.001 };
        const minute = Math.floor((atMs - bakeStart) / 60_000);
        return { requests, errors: requests * (minute >= 7 ? 0.08 : 0.002) };
      });
      await handle.signal(approveSignal, { approver: 'tech-lead' });
      const baking = await waitForStatus(h, handle, inPhase('baking'), 'the bake', 60_000);
      bakeStart = Date.parse(baking.steps.at(-1)!.startedAt);
      return result(handle);
    });
    await recordHistory(h, 'release-v3.1.0', 'release-bake-rollback');
    expect(status.phase).toBe('rolled-back');
    expect(status.outcome).toMatch(/minute 7/);
    const storefront = status.bakeSamples.filter((s) => s.service === 'storefront' && s.errorRateQuery);
    const breach = storefront.find((s) => s.decision === 'breach')!;
    expect(breach.minute).toBe(7);
    expect(breach.errorRate).toBeGreaterThan(0.05);
    expect(breach.threshold).toBe(0.05);
    expect(breach.errorRateQuery).toContain('storefront');
    expect(storefront.filter((s) => s.minute < 7).every((s) => s.decision === 'healthy')).toBe(true);
    expect(status.compensations.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^switch storefront back/),
        'verify previous digest is live',
        'purge CDN cache',
      ]),
    );
    expect(
      status.compensations.every((c) => c.status === 'completed'),
      JSON.stringify(status.compensations),
    ).toBe(true);
    expect(await liveDigests(h.sandbox)).toEqual(before);
    expect(Object.values(before)).not.toContain(digest);
    expect(h.sandbox.fakes.telegram.sent.some((m) => m.text.startsWith('ROLLBACK of v3.1.0'))).toBe(true);
    expectNoTrafficBeforeApproval(status);
  }, 120_000);

  it.each([
    ['keeps the release when an approver says so', 'approve', 'released'],
    ['rolls back when an approver rejects', 'reject', 'rolled-back'],
  ] as const)(
    'is inconclusive when metrics are missing; %s',
    async (_name, decision, phase) => {
      const version = decision === 'approve' ? '3.2.0' : '3.2.1';
      await h.sandbox.pushImage(version);
      const before = await liveDigests(h.sandbox);
      const { status } = await h.withWorker(async () => {
        const handle = await h.startRelease({ version });
        await toApproval(h, handle);
        for (const service of Object.keys(h.sandbox.config.services))
          h.sandbox.fakes.prometheus.setTraffic(service, 'down');
        await handle.signal(approveSignal, { approver: 'tech-lead' });
        const stuck = await waitForStatus(
          h,
          handle,
          inPhase('bake-inconclusive'),
          'an inconclusive bake',
          60_000,
        );
        expect(stuck.bakeSamples.filter((s) => s.decision === 'backend-error').length).toBeGreaterThan(0);
        // The phase changes first; the notification follows in the same workflow step.
        await waitFor(
          () => Promise.resolve(h.sandbox.fakes.telegram.sent.some((m) => m.text.includes('inconclusive'))),
          'the inconclusive-bake notification',
        );
        for (const service of Object.keys(h.sandbox.config.services))
          h.sandbox.fakes.prometheus.setTraffic(service, undefined);
        if (decision === 'approve')
          await handle.signal(approveSignal, { approver: 'ops-lead', comment: 'dashboards look fine' });
        else
          await handle.signal(rejectSignal, {
            approver: 'ops-lead',
            reason: 'cannot see metrics, play safe',
          });
        return result(handle);
      });
      await recordHistory(h, `release-v${version}`, `release-bake-inconclusive-${decision}`);
      expect(status.phase).toBe(phase);
      if (phase === 'rolled-back') expect(await liveDigests(h.sandbox)).toEqual(before);
      else expect(status.approvals.map((a) => a.decision)).toEqual(['approved', 'bake-continue']);
    },
    120_000,
  );
});

describe('cancellation', () => {
  it.each([
    ['building', []],
    ['qa-gate', ['redeploy staging']],
    ['awaiting-approval', ['redeploy staging']],
    ['baking', ['switch', 'restore database snapshot', 'redeploy staging']],
  ] as const)(
    'in %s runs the compensations of what was done, in reverse',
    async (phase, expected) => {
      const version = {
        building: '3.3.0',
        'qa-gate': '3.3.1',
        'awaiting-approval': '3.3.2',
        baking: '3.3.3',
      }[phase];
      await h.sandbox.pushImage(version);
      const before = await liveDigests(h.sandbox);
      const stagingBefore = h.sandbox.stagingTags();
      if (phase === 'building') h.sandbox.fakes.ci.nextConclusions.push('never');
      const column = `probe_${version.replaceAll('.', '_')}`;
      if (phase === 'baking')
        h.sandbox.addMigration(`0100_${column}.sql`, `ALTER TABLE public.products ADD COLUMN ${column} int;`);
      const { status } = await h.withWorker(async () => {
        const handle = await h.startRelease({ version });
        if (phase !== 'building') await waitForStatus(h, handle, inPhase('qa-gate'), 'the QA gate');
        if (phase === 'awaiting-approval' || phase === 'baking') await handle.signal(qaResultSignal, pass);
        if (phase === 'baking') {
          await waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval');
          await handle.signal(approveSignal, { approver: 'tech-lead' });
        }
        await waitForStatus(h, handle, inPhase(phase), phase, 60_000);
        await handle.signal(cancelSignal, { requestedBy: 'alice', reason: `stop in ${phase}` });
        return result(handle);
      });
      await recordHistory(h, `release-v${version}`, `release-cancel-${phase}`);
      expect(status.phase).toBe('cancelled');
      expect(status.outcome).toContain(`stop in ${phase}`);
      expectCompensations(status, expected);
      if (phase === 'building') expect(status.compensations).toEqual([]);
      expect(await liveDigests(h.sandbox)).toEqual(before);
      expect(h.sandbox.stagingTags()).toEqual(stagingBefore);
      if (phase === 'baking') {
        // The migration ran, and the restored pre-deployment snapshot took it back.
        expect(status.steps.find((s) => s.name === 'apply migrations')?.detail).toContain(column);
        const columns = await h.sandbox.query(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'products'`,
        );
        expect(columns.map((c) => c['column_name'])).not.toContain(column);
      }
      expectNoTrafficBeforeApproval(status);
    },
    120_000,
  );
});

/**
 * A cancellation that lands while work is in flight: a Coolify deployment, a Proxmox task, a migration
 * statement or a canary step. Each test holds the release in its phase with the fakes (or a slow statement),
 * cancels, and checks that the work in flight was stopped and everything done was undone, in reverse.
 */
describe('cancellation while work is in flight', () => {
  interface InFlight {
    version: string;
    phase: ReleaseStatus['phase'];
    strategy?: 'canary';
    /** Holds the release in the phase; returns what undoes the hold for later tests. */
    hold: () => () => void;
    /** Resolves once the work to interrupt is under way (the phase alone may be seen before it starts). */
    underway: (handle: WorkflowHandle) => Promise<unknown>;
    expected: string[];
  }

  async function cancelInFlight(c: InFlight): Promise<ReleaseStatus> {
    await h.sandbox.pushImage(c.version);
    const before = await liveDigests(h.sandbox);
    const stagingBefore = h.sandbox.stagingTags();
    const release = c.hold();
    try {
      const { status } = await h.withWorker(async () => {
        const handle = await h.startRelease({
          version: c.version,
          ...(c.strategy ? { strategy: c.strategy } : {}),
        });
        if (c.phase !== 'staging-deploy') {
          await toApproval(h, handle);
          await handle.signal(approveSignal, { approver: 'tech-lead' });
        }
        await waitForStatus(h, handle, inPhase(c.phase), c.phase, 60_000);
        await c.underway(handle);
        await handle.signal(cancelSignal, { requestedBy: 'alice', reason: `stop in ${c.phase}` });
        return result(handle);
      });
      await recordHistory(h, `release-v${c.version}`, `release-cancel-${c.phase}`);
      expect(status.phase).toBe('cancelled');
      expect(status.outcome).toContain(`during ${c.phase}`);
      expectCompensations(status, c.expected);
      expect(await liveDigests(h.sandbox)).toEqual(before);
      expect(h.sandbox.stagingTags()).toEqual(stagingBefore);
      // Nothing left running in Coolify that could still land.
      expect(
        h.sandbox.fakes.coolify.deployments
          .filter((d) => d.status === 'queued' || d.status === 'in_progress')
          .map((d) => d.application.uuid),
      ).toEqual([]);
      expectNoTrafficBeforeApproval(status);
      expectNoContractViolations(h.sandbox);
      return status;
    } finally {
      release();
    }
  }

  const coolifyApp = (uuid: string) => h.sandbox.fakes.coolify.applications.get(uuid)!;
  const inFlightDeployment = (uuid: string) =>
    waitFor(
      () =>
        Promise.resolve(
          h.sandbox.fakes.coolify.deployments.find(
            (d) => d.application.uuid === uuid && d.status === 'in_progress',
          ),
        ),
      `a deployment of ${uuid} in progress`,
    );

  it('in staging-deploy stops the Coolify deployment and puts staging back', async () => {
    const status = await cancelInFlight({
      version: '3.4.0',
      phase: 'staging-deploy',
      hold: () => {
        coolifyApp('storefront-staging').outcomes.push('never');
        return () => (coolifyApp('storefront-staging').outcomes.length = 0);
      },
      underway: () => inFlightDeployment('storefront-staging'),
      expected: ['stop deploying 3.4.0 to storefront-staging'],
    });
    const stopped = status.compensations.find((c) => c.name.startsWith('stop deploying'))!;
    expect(stopped.detail).toMatch(/cancelled; storefront-staging back on /);
    // The strategy child's own steps reached the release with its report.
    expect(status.steps.some((s) => /^staging: deploy storefront \(batch 1\//.test(s.name))).toBe(true);
    expect(h.sandbox.fakes.coolify.deployments.some((d) => d.status === 'cancelled-by-user')).toBe(true);
  }, 120_000);

  it('in rollback-readiness stops waiting for the Proxmox snapshot; production is untouched', async () => {
    const status = await cancelInFlight({
      version: '3.4.1',
      phase: 'rollback-readiness',
      hold: () => {
        h.sandbox.fakes.proxmox.scriptNextTask(1_000_000);
        return () => h.sandbox.fakes.proxmox.finishRunningTasks();
      },
      underway: (handle) =>
        waitForStatus(
          h,
          handle,
          (s) => s.steps.some((x) => x.name === 'deployment snapshot (Proxmox)' && x.status === 'running'),
          'the Proxmox snapshot',
        ),
      expected: ['redeploy staging'],
    });
    expect(status.steps.find((s) => s.name === 'deployment snapshot (Proxmox)')?.status).toBe('cancelled');
    expect(status.compensations.some((c) => c.name.includes('switch') || c.name.includes('database'))).toBe(
      false,
    );
  }, 120_000);

  it('in migrations stops the running statement and restores the pre-deployment snapshot', async () => {
    const column = 'probe_3_4_2';
    let file = '';
    const status = await cancelInFlight({
      version: '3.4.2',
      phase: 'migrations',
      hold: () => {
        file = h.sandbox.addMigration(
          '0200_slow.sql',
          `ALTER TABLE public.products ADD COLUMN ${column} int;\nSELECT pg_sleep(60);\n`,
        );
        return () => fs.rmSync(file, { force: true });
      },
      underway: () =>
        waitFor(
          async () =>
            (
              await h.sandbox.query(
                `SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()`,
              )
            ).length > 0,
          'the slow migration running',
          30_000,
        ),
      expected: ['restore database snapshot', 'redeploy staging'],
    });
    expect(status.steps.find((s) => s.name === 'apply migrations')?.status).toBe('cancelled');
    const columns = await h.sandbox.query(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'products'`,
    );
    expect(columns.map((c) => c['column_name'])).not.toContain(column);
    const running = await h.sandbox.query(
      `SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()`,
    );
    expect(running).toEqual([]);
  }, 120_000);

  it('in production-deploy, mid-canary, puts the traffic back and checks the previous digest is live', async () => {
    let purgesBefore = 0;
    const status = await cancelInFlight({
      version: '3.4.3',
      phase: 'production-deploy',
      strategy: 'canary',
      hold: () => {
        purgesBefore = h.sandbox.fakes.cdn.purges.length;
        return () => undefined;
      },
      underway: () =>
        waitFor(async () => {
          const weights = await h.sandbox.trafficWeights('storefront');
          return Object.values(weights).every((w) => w > 0 && w < 100);
        }, 'the canary receiving part of the traffic'),
      expected: ['put storefront traffic back on', 'redeploy staging', 'verify previous digest is live'],
    });
    for (const service of Object.keys(h.sandbox.config.services)) {
      const weights = await h.sandbox.trafficWeights(service);
      expect(
        Object.values(weights).sort((a, b) => a - b),
        service,
      ).toEqual([0, 100]);
    }
    expect(status.steps.some((s) => s.name.startsWith('production: storefront: 5% to'))).toBe(true);
    expect(h.sandbox.fakes.cdn.purges.length).toBeGreaterThan(purgesBefore);
  }, 120_000);
});
