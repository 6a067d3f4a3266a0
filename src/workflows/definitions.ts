/**
 * The names people type into the Temporal CLI: workflow types, workflow ids, signals, queries and search
 * attributes of the release and rollback workflows. Imported by the workflows, the CLI and the tests
 * alike. Chosen once; never rename one.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ReleaseStatus } from '../schemas/release';

/** Workflow type of a release (`temporal workflow start --type releaseWorkflow`). */
export const RELEASE_WORKFLOW_TYPE = 'releaseWorkflow';
/** Workflow type of a rollback. */
export const ROLLBACK_WORKFLOW_TYPE = 'rollbackWorkflow';

/** The workflow id of the release of `version`: `release-v1.2.0`. */
export const releaseWorkflowId = (version: string): string => `release-v${version}`;
/** The workflow id of a rollback started at `startedAtMs`. */
export const rollbackWorkflowId = (startedAtMs: number): string => `rollback-${startedAtMs}`;

/** Signals carry raw JSON: the workflow validates every payload itself and records what it refuses. */
export const approveSignal = defineSignal<[unknown]>('approve');
export const rejectSignal = defineSignal<[unknown]>('reject');
export const cancelSignal = defineSignal<[unknown]>('cancel');
export const qaResultSignal = defineSignal<[unknown]>('qaResult');

/**
 * Internal, from a strategy child to its release: the child was cancelled and undid its own steps; these
 * are its steps and compensations, for the release's status and audit (a cancelled workflow carries no
 * result). The release accepts it only from the strategy child it is running.
 */
export const strategyUndoneSignal = defineSignal<[unknown]>('strategyUndone');

/** Where the release stands: phase, approvals, steps, bake samples, compensations. */
export const statusQuery = defineQuery<ReleaseStatus>('status');

/** Keyword search attributes set on every release, so `temporal workflow list --query` finds them. */
export const SEARCH_ATTRIBUTES = { version: 'ReleaseVersion', phase: 'ReleasePhase' } as const;
