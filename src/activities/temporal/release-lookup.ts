/**
 * Finds what a completed release left for a rollback (its `RollbackPlan`), through the Temporal client:
 * the workflow history is the record (U3), so nothing else has to be kept in step with it.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import type { RollbackPlan } from '../../schemas/deployment';
import { ReleaseVersion, type ReleaseResult } from '../../schemas/release';
import {
  RELEASE_WORKFLOW_TYPE,
  ROLLBACK_WORKFLOW_TYPE,
  SEARCH_ATTRIBUTES,
  releaseWorkflowId,
} from '../../workflows/definitions';
import { parseActivityInput } from '../activity-support';

export const FindReleasePlanInput = z.strictObject({ version: ReleaseVersion.optional() });
export type FindReleasePlanInput = z.infer<typeof FindReleasePlanInput>;

export interface FindReleasePlanResult {
  version: string;
  workflowId: string;
  plan: RollbackPlan;
}

/** At most this many released releases are looked through for the latest one. */
const LIST_LIMIT = 500;

function unavailable(err: unknown): never {
  throw failure(
    FailureType.UpstreamUnavailable,
    `Temporal: ${err instanceof Error ? err.message : String(err)}`,
  );
}

/**
 * Builds `findReleasePlan`. With a version, the plan of `release-v<version>`; without, the plan of the
 * release that completed last with phase `released`, unless a rollback of it has completed since
 * (`PolicyViolation`: name the version to go further back). Read-only and idempotent. Fails with `NotFound` when
 * there is no such release, `PolicyViolation` when the release has not completed (cancel it instead) or
 * never touched production, `UpstreamUnavailable` (retryable) when Temporal cannot be reached.
 */
export function createReleaseLookupActivities(options: { client: Client }) {
  const { client } = options;

  /**
   * The latest release may have been rolled back already: production runs its previous version, and a
   * second rollback of it would change nothing, while guessing the release before it could restore an old
   * database. Refuse, and say how to go further back.
   */
  async function refuseIfRolledBack(workflowId: string, releasedAt: number): Promise<void> {
    const version = workflowId.replace(/^release-v/, '');
    const query =
      `WorkflowType = '${ROLLBACK_WORKFLOW_TYPE}' AND ${SEARCH_ATTRIBUTES.version} = '${version}'` +
      ` AND ExecutionStatus = 'Completed'`;
    let earlier: { id: string; closedAt: number } | null = null;
    try {
      for await (const wf of client.workflow.list({ query })) {
        const closedAt = wf.closeTime?.getTime() ?? 0;
        if (closedAt >= releasedAt && (!earlier || closedAt > earlier.closedAt))
          earlier = { id: wf.workflowId, closedAt };
      }
    } catch (err) {
      unavailable(err);
    }
    if (earlier) {
      throw failure(
        FailureType.PolicyViolation,
        `the latest release, v${version}, was already rolled back by ${earlier.id} at ${new Date(earlier.closedAt).toISOString()}: ` +
          'production runs the version before it. To roll back further, name the release to undo (version)',
        { details: { version, rollback: earlier.id } },
      );
    }
  }

  return {
    async findReleasePlan(input: FindReleasePlanInput): Promise<FindReleasePlanResult> {
      const { version } = parseActivityInput(FindReleasePlanInput, input, 'findReleasePlan');
      let workflowId: string;
      if (version) {
        workflowId = releaseWorkflowId(version);
      } else {
        let latest: { id: string; closedAt: number } | null = null;
        try {
          let seen = 0;
          const query = `WorkflowType = '${RELEASE_WORKFLOW_TYPE}' AND ${SEARCH_ATTRIBUTES.phase} = 'released'`;
          for await (const wf of client.workflow.list({ query })) {
            const closedAt = wf.closeTime?.getTime() ?? 0;
            if (!latest || closedAt > latest.closedAt) latest = { id: wf.workflowId, closedAt };
            if (++seen >= LIST_LIMIT) break;
          }
        } catch (err) {
          unavailable(err);
        }
        if (!latest)
          throw failure(FailureType.NotFound, 'no release has completed yet: there is nothing to roll back');
        workflowId = latest.id;
        await refuseIfRolledBack(workflowId, latest.closedAt);
      }
      const handle = client.workflow.getHandle(workflowId);
      let result: ReleaseResult;
      try {
        const description = await handle.describe();
        if (description.status.name !== 'COMPLETED') {
          throw failure(
            FailureType.PolicyViolation,
            `${workflowId} is ${description.status.name.toLowerCase()}, not completed: a running release is cancelled (its compensations undo it), not rolled back`,
          );
        }
        result = (await handle.result()) as ReleaseResult;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw failure(FailureType.NotFound, `there is no release ${workflowId}`);
        if (err instanceof Error && 'type' in err && typeof err.type === 'string') throw err;
        unavailable(err);
      }
      if (!result.rollbackPlan) {
        throw failure(
          FailureType.PolicyViolation,
          `${workflowId} ended ${result.status.phase} without touching production: there is nothing to roll back`,
        );
      }
      return { version: result.status.version, workflowId, plan: result.rollbackPlan };
    },
  };
}

export type ReleaseLookupActivities = ReturnType<typeof createReleaseLookupActivities>;
