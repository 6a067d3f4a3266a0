/**
 * The public shapes of the release and rollback workflows: their inputs, the payloads of their signals,
 * the answer of the `status` query and their results. People type these into the Temporal CLI, so the
 * field names are a contract: add optional fields, never rename or remove one.
 *
 * Deterministic zone: workflows parse their input and every signal payload with these schemas. Changing a
 * schema changes workflow code: a stricter rule can break the replay of a release already running.
 */
import { z } from 'zod';
import type { RollbackPlan } from './deployment';

/** A semantic version without the leading `v`: `1.2.0`. Pre-release suffixes belong to tags, not to releases. */
export const ReleaseVersion = z
  .string()
  .regex(/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/, 'must be a version such as 1.2.0 (no leading v)');

/** A full 40-character git commit SHA, lower case. */
export const CommitSha = z
  .string()
  .regex(/^[0-9a-f]{40}$/, 'must be the full 40-character lower-case commit SHA');

/** A person (or bot) as they sign requests and approvals: a login such as `alice` or `ops@luxima.id`. */
export const Actor = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be a login such as alice or ops@luxima.id');

/** The deployment strategies of production (S1-S4). */
export const StrategyName = z.enum(['blue-green', 'canary', 'shadow', 'rolling']);
export type StrategyName = z.infer<typeof StrategyName>;

const ChangeLines = z.array(z.string().trim().min(1).max(500)).max(200).default([]);

/** Keep-a-Changelog sections of the entry this release writes (L5). */
export const ReleaseChanges = z.strictObject({
  added: ChangeLines,
  fixed: ChangeLines,
  changed: ChangeLines,
});
export type ReleaseChanges = z.infer<typeof ReleaseChanges>;

/**
 * Input of `releaseWorkflow` (workflow id `release-v<version>`, task queue `aceh-release`):
 * `{"version":"1.2.0","commit":"<40-hex sha>","requestedBy":"alice"}` plus optional `strategy`, `hotfix`
 * and `changes`. Without `strategy` the production environment's configured strategy is used.
 */
export const ReleaseInput = z.strictObject({
  version: ReleaseVersion,
  commit: CommitSha,
  requestedBy: Actor,
  strategy: StrategyName.optional(),
  /** L3: the shorter hotfix route (no staging QA gate, the hotfix approval count); still approved and audited. */
  hotfix: z.boolean().default(false),
  changes: ReleaseChanges.optional(),
  /** The branch CI builds and the commit must be on; the production branch (`main`) by default. */
  branch: z
    .string()
    .regex(
      /^(?!\/)(?!.*\/\/)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}(?<!\/)$/,
      'must be a branch name such as main or hotfix/1.2.1',
    )
    .optional(),
});
export type ReleaseInput = z.input<typeof ReleaseInput>;
export type ParsedReleaseInput = z.output<typeof ReleaseInput>;

const Comment = z.string().max(2000).optional();

/**
 * `approve` signal: `{"approver":"bob","comment":"..."}`. `digest`, when given, must be the digest the
 * release is bound to (an approval of another image is refused). `freezeOverride: true` also counts as
 * one of the two approvals that let a release through a freeze window.
 */
export const ApproveSignal = z.strictObject({
  approver: Actor,
  comment: Comment,
  digest: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/, 'must be an image digest sha256:<64 hex>')
    .optional(),
  freezeOverride: z.boolean().optional(),
});
export type ApproveSignal = z.infer<typeof ApproveSignal>;

/** `reject` signal: `{"approver":"bob","reason":"..."}`. */
export const RejectSignal = z.strictObject({
  approver: Actor,
  reason: z.string().trim().min(1, 'a rejection needs a reason').max(2000),
});
export type RejectSignal = z.infer<typeof RejectSignal>;

/** `cancel` signal: `{"requestedBy":"carol","reason":"..."}`. */
export const CancelSignal = z.strictObject({
  requestedBy: Actor,
  reason: z.string().trim().min(1, 'a cancellation needs a reason').max(2000),
});
export type CancelSignal = z.infer<typeof CancelSignal>;

/** `qaResult` signal (L4): `{"passed":true,"reporter":"qa-bot","reportUrl":"..."}`. */
export const QaResultSignal = z.strictObject({
  passed: z.boolean(),
  reporter: Actor,
  reportUrl: z.url({ protocol: /^https?$/ }).optional(),
  summary: z.string().max(2000).optional(),
});
export type QaResultSignal = z.infer<typeof QaResultSignal>;

/** The phases of a release, in the order a normal release passes them. */
export const RELEASE_PHASES = [
  'validating',
  'queued',
  'building',
  'image-check',
  'staging-deploy',
  'staging-smoke',
  'qa-gate',
  'rc-tag',
  'awaiting-approval',
  'freeze-wait',
  'rollback-readiness',
  'migrations',
  'production-deploy',
  'baking',
  'bake-inconclusive',
  'finalizing',
  'compensating',
  'released',
  'rolled-back',
  'rejected',
  'cancelled',
  'failed',
] as const;
export type ReleasePhase = (typeof RELEASE_PHASES)[number];

/** The phases a release ends in. */
export const TERMINAL_PHASES = ['released', 'rolled-back', 'rejected', 'cancelled', 'failed'] as const;
export type TerminalPhase = (typeof TERMINAL_PHASES)[number];

export const isTerminalPhase = (phase: string): phase is TerminalPhase =>
  (TERMINAL_PHASES as readonly string[]).includes(phase);

export type StepStatus = 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';

/** One step of the release as the `status` query reports it. Times are ISO 8601. */
export interface ReleaseStep {
  name: string;
  status: StepStatus;
  startedAt: string;
  endedAt: string | null;
  detail?: string;
}

/** An accepted decision on the release. */
export interface ApprovalRecord {
  approver: string;
  decision: 'approved' | 'rejected' | 'freeze-override' | 'bake-continue';
  at: string;
  comment?: string;
  digest?: string;
}

/** A signal the release refused (malformed, not allowed, self-approval, wrong digest, wrong phase). */
export interface RefusedSignal {
  signal: string;
  from: string | null;
  reason: string;
  at: string;
}

/** One bake sample (M4, M2): what was asked, what came back, against what, and what was decided. */
export interface BakeSample {
  minute: number;
  at: string;
  service: string;
  errorRateQuery: string;
  errorRate: number | null;
  requests: number | null;
  threshold: number;
  minRequests: number;
  errorLines: number | null;
  maxErrorLines: number;
  decision: 'healthy' | 'breach' | 'insufficient-data' | 'backend-error';
  note?: string;
}

/** One compensation run on cancellation, failure or automatic rollback. */
export interface CompensationRecord {
  name: string;
  status: 'completed' | 'failed';
  at: string;
  detail?: string;
}

/**
 * The internal `strategyUndone` signal: a cancelled strategy child's steps and compensations, sent to its
 * release (see `undoAndFail`). Validated like every signal; it comes from workflow code, not a person.
 */
export const StrategyUndone = z.strictObject({
  workflowId: z.string().min(1),
  steps: z.array(
    z.strictObject({
      name: z.string(),
      status: z.enum(['running', 'completed', 'failed', 'skipped', 'cancelled']),
      startedAt: z.string(),
      endedAt: z.string().nullable(),
      detail: z.string().optional(),
    }),
  ),
  compensations: z.array(
    z.strictObject({
      name: z.string(),
      status: z.enum(['completed', 'failed']),
      at: z.string(),
      detail: z.string().optional(),
    }),
  ),
});
export type StrategyUndone = z.infer<typeof StrategyUndone>;

/** The answer of the `status` query. */
export interface ReleaseStatus {
  version: string;
  commit: string;
  requestedBy: string;
  strategy: StrategyName | null;
  hotfix: boolean;
  phase: ReleasePhase;
  terminal: boolean;
  /** Place in the environment lock's queue while `queued` (1 = next); null otherwise. */
  queuePosition: number | null;
  /** The image digest the release is bound to, from the image check on. */
  digest: string | null;
  /** The digest production ran before this release, the one a rollback restores. */
  previousDigest: string | null;
  rcTag: string | null;
  requiredApprovals: number | null;
  approvals: ApprovalRecord[];
  refused: RefusedSignal[];
  steps: ReleaseStep[];
  bakeSamples: BakeSample[];
  compensations: CompensationRecord[];
  /** While in a freeze window: its name and when it ends. */
  freeze: { window: string; until: string } | null;
  /** Why the release ended as it did, for the terminal phases other than `released`. */
  outcome: string | null;
}

/** The result of `releaseWorkflow`: the final status plus the artifacts of a successful release. */
export interface ReleaseResult {
  status: ReleaseStatus;
  tag: string | null;
  changelogEntry: string | null;
  changelogPath: string | null;
  docsSnapshotPath: string | null;
  /** How to undo this release; what `rollbackWorkflow` reads. Null when production was never touched. */
  rollbackPlan: RollbackPlan | null;
}

/**
 * Input of `rollbackWorkflow`: `{"reason":"...","requestedBy":"..."}` plus optional `version`, the
 * release to undo (by default the one production runs now, as the audit log records it).
 */
export const RollbackInput = z.strictObject({
  reason: z.string().trim().min(1, 'a rollback needs a reason').max(2000),
  requestedBy: Actor,
  version: ReleaseVersion.optional(),
  /** Restore the pre-deployment database snapshot (R2); true by default. */
  restoreDatabase: z.boolean().default(true),
  /** Restore a snapshot older than the RPO anyway; without it such a snapshot is refused. */
  confirmStaleSnapshot: z.boolean().default(false),
});
export type RollbackInput = z.input<typeof RollbackInput>;
export type ParsedRollbackInput = z.output<typeof RollbackInput>;

/** The result of `rollbackWorkflow`. */
export interface RollbackResult {
  version: string;
  restoredDigest: string | null;
  databaseRestored: boolean;
  steps: ReleaseStep[];
}
