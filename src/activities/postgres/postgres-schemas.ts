/**
 * Inputs and results of the PostgreSQL activities (MISSION L5, H4, R2, B1). Imports nothing but zod, so the
 * workflows may import these schemas too.
 */
import { z } from 'zod';

/** Input of `applyMigrations`. `dryRun` lists what would be applied and applies nothing. */
export const ApplyMigrationsInput = z
  .object({
    dryRun: z.boolean().default(false),
  })
  .strict();
export type ApplyMigrationsInput = z.input<typeof ApplyMigrationsInput>;

/**
 * Result of `applyMigrations`: `applied` were applied by this call (in order), `skipped` had been applied
 * before (by any run), `pending` would be applied (only filled on a dry run).
 */
export const ApplyMigrationsResult = z.object({
  applied: z.array(z.string()),
  skipped: z.array(z.string()),
  pending: z.array(z.string()),
});
export type ApplyMigrationsResult = z.infer<typeof ApplyMigrationsResult>;

/**
 * Heartbeat details of `applyMigrations`: the files this attempt applied so far and, while a file runs, its
 * name and how long it has run.
 */
export const ApplyMigrationsProgress = z.object({
  phase: z.enum(['waiting-for-lock', 'applying', 'done']),
  applied: z.array(z.string()),
  running: z.string().optional(),
  runningForMs: z.number().optional(),
});
export type ApplyMigrationsProgress = z.infer<typeof ApplyMigrationsProgress>;

const shortText = z.string().min(1).max(200);

/**
 * One row of the deployment audit log `internal.audit_deploy` (H4). Workflow and run ids come from the
 * activity context, not from the input. `idempotencyKey` defaults to `<workflowId>/<activityId>`.
 */
export const AppendAuditRecordInput = z
  .object({
    step: shortText,
    actor: shortText,
    action: shortText,
    version: shortText.optional(),
    digest: shortText.optional(),
    decision: shortText.optional(),
    details: z.record(z.string(), z.unknown()).optional(),
    idempotencyKey: z.string().min(1).max(500).optional(),
  })
  .strict();
export type AppendAuditRecordInput = z.input<typeof AppendAuditRecordInput>;

/** `id` is the row id (a bigint, as a string); `inserted` is false when the key had been recorded before. */
export const AppendAuditRecordResult = z.object({
  id: z.string().regex(/^\d+$/),
  inserted: z.boolean(),
});
export type AppendAuditRecordResult = z.infer<typeof AppendAuditRecordResult>;

/**
 * Input of `appendAuditRecords`: rows written in one call, in order. Each needs its `idempotencyKey` (the
 * default of a single row, `<workflowId>/<activityId>`, would be the same for all of them).
 */
export const AppendAuditRecordsInput = z
  .object({
    rows: z
      .array(AppendAuditRecordInput.safeExtend({ idempotencyKey: z.string().min(1).max(500) }))
      .min(1)
      .max(500),
  })
  .strict();
export type AppendAuditRecordsInput = z.input<typeof AppendAuditRecordsInput>;

/** One result per row, in the order of the input. */
export const AppendAuditRecordsResult = z.object({ rows: z.array(AppendAuditRecordResult) });
export type AppendAuditRecordsResult = z.infer<typeof AppendAuditRecordsResult>;

/** A logical snapshot (`pg_dump -Fc`) as recorded in workflow history; enough to restore and verify it. */
export const SnapshotRecord = z.object({
  path: z.string().min(1),
  sizeBytes: z.number().int().nonnegative(),
  /** When the dump started: the data is as of this instant (or slightly later). ISO 8601. */
  takenAt: z.iso.datetime({ offset: true }),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type SnapshotRecord = z.infer<typeof SnapshotRecord>;

/** Input of `takeSnapshot`. The file name derives from `idempotencyKey` (default `<workflowId>/<activityId>`). */
export const TakeSnapshotInput = z
  .object({
    idempotencyKey: z.string().min(1).max(500).optional(),
  })
  .strict();
export type TakeSnapshotInput = z.input<typeof TakeSnapshotInput>;

/** `reused` is true when a complete snapshot for the key already existed and was returned as is. */
export const TakeSnapshotResult = SnapshotRecord.extend({ reused: z.boolean() });
export type TakeSnapshotResult = z.infer<typeof TakeSnapshotResult>;

/** Heartbeat details of `takeSnapshot` and `restoreSnapshot`. */
export const SnapshotProgress = z.object({
  phase: z.enum(['dumping', 'verifying', 'restoring', 'done']),
  bytes: z.number().int().nonnegative(),
  items: z.number().int().nonnegative().optional(),
});
export type SnapshotProgress = z.infer<typeof SnapshotProgress>;

/** R2: the recovery point objective, one hour. */
export const DEFAULT_RESTORE_MAX_AGE_MS = 60 * 60 * 1000;

/**
 * Input of `restoreSnapshot`: the snapshot as `takeSnapshot` returned it, the oldest acceptable age
 * (RPO, default one hour) and the explicit confirmation needed to restore an older one.
 */
export const RestoreSnapshotInput = z
  .object({
    snapshot: SnapshotRecord.extend({ sizeBytes: z.number().int().nonnegative().optional() }),
    maxAgeMs: z.number().int().positive().default(DEFAULT_RESTORE_MAX_AGE_MS),
    confirmStale: z.boolean().default(false),
  })
  .strict();
export type RestoreSnapshotInput = z.input<typeof RestoreSnapshotInput>;

/** `ageMs` is the snapshot's age when the restore started; `stale` says it was older than `maxAgeMs`. */
export const RestoreSnapshotResult = z.object({
  path: z.string(),
  ageMs: z.number().int().nonnegative(),
  stale: z.boolean(),
  /** Objects of the dump left as they are in the database (the append-only audit log). */
  preserved: z.array(z.string()),
});
export type RestoreSnapshotResult = z.infer<typeof RestoreSnapshotResult>;
