/**
 * `rollbackWorkflow` (R1-R4): puts production back on the version it ran before a completed release, on
 * its own, at any time after the release (a release that is still running is cancelled instead: its
 * compensations undo it).
 *
 * 1. Finds the release's rollback plan in its workflow result (the latest released one, or `version`).
 * 2. Refuses, before changing anything, a database snapshot older than the RPO unless
 *    `confirmStaleSnapshot` (R2).
 * 3. R1: switches each service back to the colour that still runs the previous version, or redeploys the
 *    previous revision in Coolify where the release updated in place.
 * 4. R2: restores the pre-deployment snapshot (unless `restoreDatabase: false`).
 * 5. Checks that the exact previous digest is live, R3: purges the CDN, R4: alerts Telegram.
 * Every step is in the audit log and the workflow history.
 */
import { proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { z } from 'zod';
import type { PlatformActivities } from '../activities';
import type { ReleaseActivities } from '../activities/release/release-activities';
import type { ReleaseLookupActivities } from '../activities/temporal/release-lookup';
import { FailureType, failure } from '../errors';
import { RollbackInput, type RollbackResult } from '../schemas/release';
import { DATABASE_JOB, QUICK_CALL, READ_CALL } from './activity-options';
import { SEARCH_ATTRIBUTES, statusQuery } from './definitions';
import { redeployPrevious, servicesNotServing } from './deploy-support';
import { ReleaseJournal, asWorkflowFailure, describeError } from './release-journal';

const quick = proxyActivities<PlatformActivities & ReleaseActivities & ReleaseLookupActivities>(QUICK_CALL);
const read = proxyActivities<PlatformActivities & ReleaseActivities>(READ_CALL);
const database = proxyActivities<PlatformActivities>(DATABASE_JOB);

export async function rollbackWorkflow(rawInput: RollbackInput): Promise<RollbackResult> {
  const parsed = RollbackInput.safeParse(rawInput);
  if (!parsed.success) {
    throw failure(FailureType.InvalidInput, `rollback input is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const input = parsed.data;
  const journal = new ReleaseJournal(
    {
      version: input.version ?? 'latest',
      commit: '',
      requestedBy: input.requestedBy,
      strategy: null,
      hotfix: false,
    },
    'rollback',
  );
  const status = journal.status;
  setHandler(statusQuery, () => status);
  journal.audit({
    step: 'rollback',
    action: 'rollback-requested',
    details: { reason: input.reason, version: input.version ?? null },
  });
  let databaseRestored = false;
  try {
    const settings = await journal.step('load settings', () => quick.loadReleaseSettings({ hotfix: false }));
    const found = await journal.step(
      'find the release',
      () => quick.findReleasePlan(input.version ? { version: input.version } : {}),
      (f) => `${f.workflowId}: ${f.plan.digest} -> ${f.plan.previousDigest ?? 'unknown'}`,
    );
    const plan = found.plan;
    status.version = found.version;
    status.digest = plan.digest;
    status.previousDigest = plan.previousDigest;
    upsertSearchAttributes({ [SEARCH_ATTRIBUTES.version]: [found.version] });

    const snapshot = input.restoreDatabase ? plan.snapshot : null;
    if (snapshot) {
      await journal.step(
        'snapshot within the RPO',
        async () => {
          const age = await read.checkSnapshotAge({ takenAt: snapshot.takenAt, maxAgeMs: settings.rpoMs });
          const ageText = `${Math.round(age.ageMs / 60_000)} min`;
          if (age.stale && !input.confirmStaleSnapshot) {
            throw failure(
              FailureType.PolicyViolation,
              `the pre-deployment snapshot of v${found.version} is ${ageText} old, older than the RPO of ${Math.round(settings.rpoMs / 60_000)} min: restoring it would lose everything written since. Nothing was changed. Start the rollback again with confirmStaleSnapshot: true to restore it anyway, or with restoreDatabase: false to roll back the application only.`,
            );
          }
          return age.stale
            ? `${ageText} old, older than the RPO: confirmed by ${input.requestedBy}`
            : `${ageText} old`;
        },
        (d) => d,
      );
    } else {
      journal.note(
        'snapshot within the RPO',
        'skipped',
        input.restoreDatabase ? 'the release took no snapshot' : 'restoreDatabase: false',
      );
    }

    for (const rollout of plan.services) {
      if (rollout.previousTraffic) {
        const state = rollout.previousTraffic;
        await journal.step(
          `switch ${rollout.service} back to ${rollout.liveBefore ?? 'the previous state'}`,
          () => quick.restoreTrafficState({ service: rollout.service, state }),
        );
      }
      for (const app of rollout.inPlace) {
        await journal.step(
          `redeploy ${rollout.service} on ${app.previousImageTag ?? 'nothing'} (Coolify previous revision)`,
          () => redeployPrevious(app),
        );
      }
    }

    if (snapshot) {
      await journal.step(
        'restore database snapshot',
        async () => {
          const restored = await database.restoreSnapshot({
            snapshot,
            maxAgeMs: settings.rpoMs,
            confirmStale: input.confirmStaleSnapshot,
          });
          databaseRestored = true;
          return `${restored.path}, ${Math.round(restored.ageMs / 1000)}s old${restored.preserved.length ? `, kept ${restored.preserved.join(', ')}` : ''}`;
        },
        (d) => d,
      );
    }

    await journal.step(
      'previous digest is live',
      async () => {
        const expected = plan.previousDigest;
        if (!expected) return 'no previous digest recorded (first release)';
        const problems = await servicesNotServing(settings.services, expected);
        if (problems.length > 0) {
          throw failure(
            FailureType.OperationFailed,
            `${problems.join('; ')}: check Coolify and the traffic provider`,
          );
        }
        return `every service runs ${expected}`;
      },
      (d) => d,
    );

    await journal.step(
      'purge CDN cache',
      () => quick.purgeCache({ everything: true }),
      (r) => `${r.mode}, ${r.purgeIds.length} purge(s)`,
    );
    await journal.notify(
      `ROLLBACK of v${found.version} in ${settings.productionEnvironment} by ${input.requestedBy}: ${input.reason}. Now on ${plan.previousDigest ?? 'the previous version'}${databaseRestored ? '; database restored from the pre-deployment snapshot' : ''}.`,
    );
    status.outcome = `rolled back v${found.version}: ${input.reason}`;
    journal.phase('rolled-back');
    return {
      version: found.version,
      restoredDigest: plan.previousDigest,
      databaseRestored,
      steps: status.steps,
    };
  } catch (err) {
    status.outcome = `rollback failed: ${describeError(err)}`;
    journal.phase('failed', { outcome: status.outcome });
    await journal.notify(
      `ROLLBACK of v${status.version} FAILED (${input.requestedBy}: ${input.reason}): ${describeError(err)}`,
    );
    throw asWorkflowFailure(err);
  } finally {
    await journal.flush();
  }
}
