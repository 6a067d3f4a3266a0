/**
 * `rollbackWorkflow` on its own (R1-R4), after a completed release: it refuses a database snapshot older
 * than the RPO before changing anything, and with the confirmation puts production back on the exact
 * previous digest, restores the snapshot, purges the CDN and alerts Telegram.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { TASK_QUEUE } from '../../src/config/temporal-connection';
import type { ReleaseResult, RollbackInput, RollbackResult } from '../../src/schemas/release';
import { ROLLBACK_WORKFLOW_TYPE, approveSignal, rollbackWorkflowId } from '../../src/workflows/definitions';
import { liveDigests } from './release-invariants';
import { recordHistory } from './release-harness';
import { toApproval, useReleaseHarness } from './use-release-harness';

let n = 0;

// An RPO of one millisecond: every snapshot is stale by the time a rollback looks at it.
const h = useReleaseHarness({
  configure: (config) => ({ ...config, recovery: { ...config.recovery, rpo: 1 } }),
});

function rollback(input: RollbackInput) {
  return h.env.client.workflow.start(ROLLBACK_WORKFLOW_TYPE, {
    taskQueue: TASK_QUEUE,
    workflowId: rollbackWorkflowId(Date.now() + n++),
    args: [input],
  });
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('rollbackWorkflow', () => {
  it('refuses a stale snapshot untouched, then with confirmation restores the previous digest and the database', async () => {
    const before = await liveDigests(h.sandbox);
    const digest = await h.sandbox.pushImage('7.0.0');
    const column = 'probe_rollback';
    h.sandbox.addMigration(`0200_${column}.sql`, `ALTER TABLE public.products ADD COLUMN ${column} int;`);
    await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '7.0.0' });
      await toApproval(h, handle);
      await handle.signal(approveSignal, { approver: 'tech-lead' });
      const { status } = (await handle.result()) as ReleaseResult;
      expect(status.phase).toBe('released');
    });
    expect(Object.values(await liveDigests(h.sandbox)).every((d) => d === digest)).toBe(true);
    const columns = async () =>
      (
        await h.sandbox.query(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'products'`,
        )
      ).map((c) => c['column_name']);
    expect(await columns()).toContain(column);

    const refused = await h.withWorker(async () => {
      const handle = await rollback({ reason: 'error rate 7%', requestedBy: 'carol', version: '7.0.0' });
      return failureOf(handle.result());
    });
    expect(refused.type).toBe('PolicyViolation');
    expect(refused.message).toMatch(/older than the RPO.*Nothing was changed.*confirmStaleSnapshot/s);
    expect(Object.values(await liveDigests(h.sandbox)).every((d) => d === digest)).toBe(true);

    const sent = h.sandbox.fakes.telegram.sent.length;
    const result = await h.withWorker(async () => {
      const handle = await rollback({
        reason: 'error rate 7%',
        requestedBy: 'carol',
        version: '7.0.0',
        confirmStaleSnapshot: true,
      });
      const r = (await handle.result()) as RollbackResult;
      await recordHistory(h, handle.workflowId, 'rollback-confirmed');
      return r;
    });
    expect(result).toMatchObject({
      version: '7.0.0',
      restoredDigest: Object.values(before)[0],
      databaseRestored: true,
    });
    expect(await liveDigests(h.sandbox)).toEqual(before);
    expect(await columns()).not.toContain(column);
    expect(result.steps.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        'snapshot within the RPO',
        'restore database snapshot',
        'previous digest is live',
        'purge CDN cache',
      ]),
    );
    expect(
      h.sandbox.fakes.telegram.sent.slice(sent).some((m) => m.text.startsWith('ROLLBACK of v7.0.0')),
    ).toBe(true);
    const audit = await h.sandbox.auditRows();
    expect(audit.some((r) => r.action === 'rollback-requested' && r.actor === 'carol')).toBe(true);

    // The latest release is rolled back already: a rollback that names no version says so, changes nothing.
    const again = await h.withWorker(async () =>
      failureOf((await rollback({ reason: 'still slow', requestedBy: 'carol' })).result()),
    );
    expect(again.type).toBe('PolicyViolation');
    expect(again.message).toMatch(
      /v7\.0\.0, was already rolled back by rollback-\d+ .*name the release to undo/s,
    );
    expect(await liveDigests(h.sandbox)).toEqual(before);
  }, 180_000);

  it('says there is nothing to roll back for a release that does not exist', async () => {
    const f = await h.withWorker(async () =>
      failureOf((await rollback({ reason: 'test', requestedBy: 'carol', version: '99.0.0' })).result()),
    );
    expect(f.type).toBe('NotFound');
    expect(f.message).toContain('release-v99.0.0');
  }, 60_000);
});
