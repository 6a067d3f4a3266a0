/**
 * Releases that wait: two days for approval with reminders (L6), and two releases contending for
 * production (the second queues behind the first and sees its position).
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ReleaseResult } from '../../src/schemas/release';
import { approveSignal, qaResultSignal } from '../../src/workflows/definitions';
import { waitFor } from '../devserver/helpers';
import { expectNoTrafficBeforeApproval } from './release-invariants';
import { inPhase, recordHistory, waitForStatus } from './release-harness';
import { toApproval, useReleaseHarness } from './use-release-harness';

const h = useReleaseHarness();

describe('waiting', () => {
  it('waits two days for approval, reminding every 12 hours, and loses nothing', async () => {
    await h.sandbox.pushImage('4.0.0');
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '4.0.0' });
      await toApproval(h, handle);
      const sentBefore = h.sandbox.fakes.telegram.sent.length;
      // Two days and an hour: the fourth reminder (at 48 h) is well inside, not on the boundary.
      await h.env.sleep('49 hours');
      const waiting = await h.status(handle);
      expect(waiting.phase).toBe('awaiting-approval');
      const reminders = await waitFor(() => {
        const sent = h.sandbox.fakes.telegram.sent
          .slice(sentBefore)
          .filter((m) => m.text.startsWith('Reminder'));
        return Promise.resolve(sent.length >= 4 && sent);
      }, 'four reminders');
      expect(reminders).toHaveLength(4);
      expect(reminders.at(-1)?.text).toContain('48h');
      await handle.signal(approveSignal, { approver: 'ops-lead', comment: 'back from the weekend' });
      return (await handle.result()) as ReleaseResult;
    });
    await recordHistory(h, 'release-v4.0.0', 'release-two-day-approval');
    expect(status.phase).toBe('released');
    const approval = status.steps.find((s) => s.name === 'approval')!;
    expect(Date.parse(approval.endedAt!) - Date.parse(approval.startedAt)).toBeGreaterThanOrEqual(
      2 * 86_400_000,
    );
    expect(approval.detail).toContain('4 reminder');
    expectNoTrafficBeforeApproval(status);
    const audit = await h.sandbox.auditRows('release-v4.0.0');
    expect(audit.filter((r) => r.action === 'reminder')).toHaveLength(4);
  }, 120_000);

  it('queues a second release behind the first, shows its position, and runs it after', async () => {
    await h.sandbox.pushImage('4.1.0');
    await h.sandbox.pushImage('4.1.1');
    const [first, second] = await h.withWorker(async () => {
      const a = await h.startRelease({ version: '4.1.0' });
      await waitForStatus(h, a, inPhase('qa-gate'), 'the first release at the QA gate');
      const b = await h.startRelease({ version: '4.1.1' });
      const queued = await waitForStatus(
        h,
        b,
        (s) => s.phase === 'queued' && s.queuePosition === 1,
        'the second release queued',
      );
      expect(queued.steps.map((s) => s.name)).not.toContain('ci build and test');

      await a.signal(qaResultSignal, { passed: true, reporter: 'qa-bot' });
      await waitForStatus(h, a, inPhase('awaiting-approval'), 'the first release at approval');
      expect((await h.status(b)).phase).toBe('queued');
      await a.signal(approveSignal, { approver: 'tech-lead' });
      const firstResult = (await a.result()) as ReleaseResult;

      const next = await waitForStatus(h, b, inPhase('qa-gate'), 'the second release at the QA gate', 60_000);
      expect(next.queuePosition).toBeNull();
      await b.signal(qaResultSignal, { passed: true, reporter: 'qa-bot' });
      await waitForStatus(h, b, inPhase('awaiting-approval'), 'the second release at approval');
      await b.signal(approveSignal, { approver: 'tech-lead' });
      return [firstResult.status, ((await b.result()) as ReleaseResult).status];
    });
    await recordHistory(h, 'release-v4.1.0', 'release-contention-first');
    await recordHistory(h, 'release-v4.1.1', 'release-contention-second');
    expect(first.phase).toBe('released');
    expect(second.phase).toBe('released');
    const firstEnd = Date.parse(first.steps.at(-1)!.endedAt!);
    const secondLock = second.steps.find((s) => s.name === 'lock production')!;
    expect(Date.parse(secondLock.endedAt!)).toBeGreaterThanOrEqual(firstEnd);
    expect(second.previousDigest).toBe(first.digest);
  }, 180_000);
});

describe('the moment a wait begins', () => {
  it('takes an approval sent as soon as the status says awaiting-approval, while audit rows are still being written', async () => {
    await h.sandbox.pushImage('4.2.0');
    const cluster = h.sandbox.postgres!;
    const holder = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: cluster.superuser,
      password: cluster.superuserPassword,
      database: h.sandbox.config.systems.postgres.database,
    });
    await holder.connect();
    let held = false;
    try {
      const { status } = await h.withWorker(async () => {
        // The CI smoke test on staging runs until the audit table is held; then every row after that
        // waits, so the flush on entering the approval wait cannot finish while we approve.
        h.sandbox.fakes.ci.nextConclusions.push('success', 'never');
        const handle = await h.startRelease({ version: '4.2.0', hotfix: true });
        await waitForStatus(h, handle, inPhase('staging-smoke'), 'the staging smoke test', 60_000);
        const smoke = await waitFor(
          () => Promise.resolve(h.sandbox.fakes.ci.runs.find((r) => r.plan === 'never')),
          'the CI smoke test running',
          60_000,
        );
        await holder.query('BEGIN');
        await holder.query(`LOCK TABLE ${h.sandbox.config.database.auditTable} IN ACCESS EXCLUSIVE MODE`);
        smoke.plan = 'success';
        held = true;
        try {
          await waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval');
          await handle.signal(approveSignal, { approver: 'tech-lead' });
          const decided = await waitForStatus(
            h,
            handle,
            (s) => s.approvals.length > 0 || s.refused.length > 0,
            'the approval to be taken or refused',
          );
          expect(decided.refused).toEqual([]);
        } finally {
          // Before the worker stops: it waits for its activities, and they wait for the table.
          await holder.query('COMMIT');
          held = false;
        }
        return (await handle.result()) as ReleaseResult;
      });
      expect(status.phase).toBe('released');
      expect(status.approvals.map((a) => [a.approver, a.decision])).toEqual([['tech-lead', 'approved']]);
      const audit = await h.sandbox.auditRows('release-v4.2.0');
      expect(audit.some((r) => r.action === 'approved' && r.actor === 'tech-lead')).toBe(true);
    } finally {
      if (held) await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
  }, 120_000);
});
