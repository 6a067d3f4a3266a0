/**
 * Stand-ins for `releaseWorkflow` and `rollbackWorkflow` with the public contract of the real ones (names,
 * input, signals, the `status` query, the phase search attribute, results) and trivial logic, so that the
 * CLI is tested against what it relies on and nothing more:
 *
 * - a release waits in `awaiting-approval` for two approvals (then `released`), a rejection (`rejected`)
 *   or a cancellation (`cancelled`, with one compensation); QA results become the `qa-gate` step;
 * - it refuses and records malformed payloads, self-approval, a second approval by the same person, an
 *   approval of another digest, a second QA result, and anything after the end;
 * - a rollback whose reason contains `simulate failure` fails; any other completes at once.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { ApplicationFailure, condition, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { z } from 'zod';
import {
  ApproveSignal,
  CancelSignal,
  QaResultSignal,
  RejectSignal,
  ReleaseInput,
  RollbackInput,
  type ReleasePhase,
  type ReleaseResult,
  type ReleaseStatus,
  type RollbackResult,
} from '../../src/schemas/release';
import {
  SEARCH_ATTRIBUTES,
  approveSignal,
  cancelSignal,
  qaResultSignal,
  rejectSignal,
  statusQuery,
} from '../../src/workflows/definitions';
import { STAND_IN_DIGEST, STAND_IN_PREVIOUS_DIGEST } from './stand-in-constants';

const phaseKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.phase, SearchAttributeType.KEYWORD);

const nowIso = () => new Date().toISOString();

/** The `from` of a refused payload: the sender's login when the payload names one. */
function senderOf(payload: unknown, field: string): string | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const value = (payload as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : null;
}

export async function releaseWorkflow(raw: unknown): Promise<ReleaseResult> {
  const parsed = ReleaseInput.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(z.prettifyError(parsed.error), 'InvalidInput');
  }
  const input = parsed.data;
  const started = nowIso();
  const status: ReleaseStatus = {
    version: input.version,
    commit: input.commit,
    requestedBy: input.requestedBy,
    strategy: input.strategy ?? null,
    hotfix: input.hotfix,
    phase: 'awaiting-approval',
    terminal: false,
    queuePosition: null,
    digest: STAND_IN_DIGEST,
    previousDigest: STAND_IN_PREVIOUS_DIGEST,
    rcTag: `v${input.version}-rc1`,
    requiredApprovals: 2,
    approvals: [],
    refused: [],
    steps: [{ name: 'validate-input', status: 'completed', startedAt: started, endedAt: started }],
    bakeSamples: [],
    compensations: [],
    freeze: null,
    outcome: null,
  };
  upsertSearchAttributes([{ key: phaseKey, value: status.phase }]);

  const refuse = (signal: string, from: string | null, reason: string) => {
    status.refused.push({ signal, from, reason, at: nowIso() });
  };
  const end = (phase: ReleasePhase, outcome: string | null) => {
    status.phase = phase;
    status.terminal = true;
    status.outcome = outcome;
    upsertSearchAttributes([{ key: phaseKey, value: phase }]);
  };
  /** The payload parsed, or undefined after recording why it was refused. */
  const accept = <S extends z.ZodType>(signal: string, schema: S, payload: unknown, field: string) => {
    const from = senderOf(payload, field);
    if (status.terminal) {
      refuse(signal, from, `the release has ended (${status.phase})`);
      return undefined;
    }
    const result = schema.safeParse(payload);
    if (!result.success) {
      refuse(signal, from, z.prettifyError(result.error).replace(/\n\s*/g, ' '));
      return undefined;
    }
    return result.data;
  };

  setHandler(statusQuery, () => status);
  setHandler(approveSignal, (payload) => {
    const approval = accept('approve', ApproveSignal, payload, 'approver');
    if (!approval) return;
    if (approval.approver === input.requestedBy) {
      return refuse(
        'approve',
        approval.approver,
        'self-approval: the requester cannot approve their release',
      );
    }
    if (status.approvals.some((a) => a.approver === approval.approver)) {
      return refuse('approve', approval.approver, 'already approved by this approver');
    }
    if (approval.digest && approval.digest !== status.digest) {
      return refuse(
        'approve',
        approval.approver,
        `digest mismatch: the release is bound to ${status.digest}`,
      );
    }
    status.approvals.push({
      approver: approval.approver,
      decision: approval.freezeOverride ? 'freeze-override' : 'approved',
      at: nowIso(),
      ...(approval.comment ? { comment: approval.comment } : {}),
      ...(approval.digest ? { digest: approval.digest } : {}),
    });
    if (status.approvals.length >= (status.requiredApprovals ?? 1)) end('released', null);
  });
  setHandler(rejectSignal, (payload) => {
    const rejection = accept('reject', RejectSignal, payload, 'approver');
    if (!rejection) return;
    status.approvals.push({
      approver: rejection.approver,
      decision: 'rejected',
      at: nowIso(),
      comment: rejection.reason,
    });
    end('rejected', `rejected by ${rejection.approver}: ${rejection.reason}`);
  });
  setHandler(cancelSignal, (payload) => {
    const cancellation = accept('cancel', CancelSignal, payload, 'requestedBy');
    if (!cancellation) return;
    status.compensations.push({ name: 'releaseEnvironmentLock', status: 'completed', at: nowIso() });
    end('cancelled', `cancelled by ${cancellation.requestedBy}: ${cancellation.reason}`);
  });
  setHandler(qaResultSignal, (payload) => {
    const qa = accept('qaResult', QaResultSignal, payload, 'reporter');
    if (!qa) return;
    if (status.steps.some((s) => s.name === 'qa-gate')) {
      return refuse('qaResult', qa.reporter, 'a QA result was already recorded');
    }
    const at = nowIso();
    status.steps.push({
      name: 'qa-gate',
      status: qa.passed ? 'completed' : 'failed',
      startedAt: at,
      endedAt: at,
      detail: `${qa.passed ? 'passed' : 'failed'}, reported by ${qa.reporter}`,
    });
  });

  await condition(() => status.terminal);
  return {
    status,
    tag: status.phase === 'released' ? `v${input.version}` : null,
    changelogEntry: null,
    changelogPath: null,
    docsSnapshotPath: null,
    rollbackPlan: null,
  };
}

// eslint-disable-next-line @typescript-eslint/require-await -- a workflow function returns a promise
export async function rollbackWorkflow(raw: unknown): Promise<RollbackResult> {
  const parsed = RollbackInput.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(z.prettifyError(parsed.error), 'InvalidInput');
  }
  const input = parsed.data;
  if (input.reason.includes('simulate failure')) {
    throw ApplicationFailure.nonRetryable('no previous revision to roll back to', 'PolicyViolation');
  }
  const at = nowIso();
  return {
    version: input.version ?? '1.1.0',
    restoredDigest: STAND_IN_PREVIOUS_DIGEST,
    databaseRestored: input.restoreDatabase,
    steps: [
      { name: 'deployPreviousRevision', status: 'completed', startedAt: at, endedAt: at },
      {
        name: 'restoreSnapshot',
        status: input.restoreDatabase ? 'completed' : 'skipped',
        startedAt: at,
        endedAt: at,
      },
    ],
  };
}
