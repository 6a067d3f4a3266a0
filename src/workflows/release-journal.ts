/**
 * The record a release keeps of itself: its `status` (answered by the query), its search attributes, the
 * audit rows of `internal.audit_deploy` (H4) and its notifications. Every transition goes through here, so
 * the status, the audit log and the workflow history tell the same story (U3).
 *
 * Audit rows are written without holding the release up, and awaited by `flush()`, which runs before
 * every wait for a human and before the release ends. One batch write is in flight at a time; the rows
 * made meanwhile go in the next batch (one activity, and one workflow task, per batch instead of per row).
 * A row carries `seq`, its place in the release's story, and an idempotency key of its own.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  isCancellation,
  log,
  patched,
  proxyActivities,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { PlatformActivities } from '../activities';
import type { AppendAuditRecordsInput } from '../activities/postgres/postgres-schemas';
import type {
  ApprovalRecord,
  CompensationRecord,
  RefusedSignal,
  ReleasePhase,
  ReleaseStatus,
  ReleaseStep,
  StepStatus,
} from '../schemas/release';
import { isTerminalPhase } from '../schemas/release';
import { AUDIT, NOTIFICATION } from './activity-options';
import { SEARCH_ATTRIBUTES } from './definitions';

const auditActivities =
  proxyActivities<Pick<PlatformActivities, 'appendAuditRecord' | 'appendAuditRecords'>>(AUDIT);

/** Patch id: audit rows are written in batches (runs before it wrote one activity per row). */
const BATCH_AUDIT_ROWS = 'batch-audit-rows';
/** Rows per batch write. */
const AUDIT_BATCH = 100;
const notifyActivities = proxyActivities<Pick<PlatformActivities, 'sendMessage' | 'annotate'>>(NOTIFICATION);

/** The text of an error for a status line or an audit row: its message, and its type when it has one. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const inner = cause instanceof Error ? cause : undefined;
    const type = (inner as { type?: unknown } | undefined)?.type ?? (err as { type?: unknown }).type;
    const message = inner?.message ?? err.message;
    return typeof type === 'string' && type ? `${type}: ${message}` : message;
  }
  return String(err);
}

/**
 * The failure a workflow ends with for `err`: an activity's or child's `ApplicationFailure` is raised as
 * the workflow's own (same type and message), so a caller branches on `failure.type` without unwrapping.
 */
export function asWorkflowFailure(err: unknown): unknown {
  if (
    (err instanceof ActivityFailure || err instanceof ChildWorkflowFailure) &&
    err.cause instanceof ApplicationFailure
  ) {
    const cause = err.cause;
    return ApplicationFailure.create({
      type: cause.type ?? undefined,
      message: cause.message,
      nonRetryable: true,
      details: cause.details ? [...cause.details] : undefined,
      cause: err,
    });
  }
  return err;
}

export interface AuditEntry {
  step: string;
  action: string;
  actor?: string;
  decision?: string;
  details?: Record<string, unknown>;
}

export class ReleaseJournal {
  readonly status: ReleaseStatus;
  private seq = 0;
  private pending: Promise<unknown>[] = [];
  private auditFailures = 0;
  private batching: boolean | undefined;
  private readonly unwritten: AppendAuditRecordsInput['rows'] = [];
  private writing: Promise<void> | null = null;

  constructor(
    initial: Pick<ReleaseStatus, 'version' | 'commit' | 'requestedBy' | 'strategy' | 'hotfix'>,
    private readonly subject: string,
  ) {
    this.status = {
      ...initial,
      phase: 'validating',
      terminal: false,
      queuePosition: null,
      digest: null,
      previousDigest: null,
      rcTag: null,
      requiredApprovals: null,
      approvals: [],
      refused: [],
      steps: [],
      bakeSamples: [],
      compensations: [],
      freeze: null,
      outcome: null,
    };
  }

  now(): string {
    return new Date().toISOString();
  }

  /** Moves to `phase`: status, search attribute `ReleasePhase`, and an audit row. */
  phase(phase: ReleasePhase, details?: Record<string, unknown>): void {
    if (this.status.phase === phase) return;
    const from = this.status.phase;
    this.status.phase = phase;
    this.status.terminal = isTerminalPhase(phase);
    upsertSearchAttributes({ [SEARCH_ATTRIBUTES.phase]: [phase] });
    this.audit({ step: phase, action: 'phase', decision: phase, details: { from, ...details } });
  }

  /**
   * Runs `fn` as the step `name`: recorded as running, then completed (with the detail `describe` gives of
   * the result), failed or cancelled, with an audit row at the end.
   */
  async step<T>(
    name: string,
    fn: () => Promise<T>,
    describe?: (result: T) => string | undefined,
  ): Promise<T> {
    const record: ReleaseStep = { name, status: 'running', startedAt: this.now(), endedAt: null };
    this.status.steps.push(record);
    try {
      const result = await fn();
      this.endStep(record, 'completed', describe?.(result));
      return result;
    } catch (err) {
      this.endStep(record, isCancellation(err) ? 'cancelled' : 'failed', describeError(err));
      throw err;
    }
  }

  /** Records a step that was decided without running anything (skipped, or a note). */
  note(name: string, status: StepStatus, detail?: string): void {
    const at = this.now();
    const record: ReleaseStep = { name, status: 'running', startedAt: at, endedAt: null };
    this.status.steps.push(record);
    this.endStep(record, status, detail);
  }

  private endStep(record: ReleaseStep, status: StepStatus, detail: string | undefined): void {
    record.status = status;
    record.endedAt = this.now();
    if (detail !== undefined) record.detail = detail;
    this.audit({
      step: record.name,
      action: 'step',
      decision: status,
      details: detail === undefined ? {} : { detail },
    });
  }

  approval(record: ApprovalRecord): void {
    this.status.approvals.push(record);
    this.audit({
      step: 'approval',
      action: record.decision,
      actor: record.approver,
      decision: record.decision,
      details: { comment: record.comment ?? null, digest: record.digest ?? null },
    });
  }

  refuse(signal: string, from: string | null, reason: string): void {
    const record: RefusedSignal = { signal, from, reason, at: this.now() };
    this.status.refused.push(record);
    log.warn('signal refused', { signal, from, reason });
    this.audit({
      step: 'signal',
      action: `${signal}-refused`,
      actor: from ?? 'unknown',
      decision: 'refused',
      details: { reason },
    });
  }

  compensation(record: CompensationRecord): void {
    this.status.compensations.push(record);
    this.audit({
      step: 'compensation',
      action: record.name,
      decision: record.status,
      details: { detail: record.detail ?? null },
    });
  }

  /** Starts writing one audit row; `flush` waits for it. A row that cannot be written is logged and counted. */
  audit(entry: AuditEntry): void {
    const seq = ++this.seq;
    const { workflowId } = workflowInfo();
    const row = {
      step: entry.step.slice(0, 200),
      actor: (entry.actor ?? this.status.requestedBy).slice(0, 200),
      action: entry.action.slice(0, 200),
      version: this.status.version,
      ...(this.status.digest ? { digest: this.status.digest } : {}),
      ...(entry.decision ? { decision: entry.decision.slice(0, 200) } : {}),
      details: { seq, subject: this.subject, phase: this.status.phase, ...entry.details },
      idempotencyKey: `${workflowId}/audit/${seq}`,
    };
    this.batching ??= patched(BATCH_AUDIT_ROWS);
    if (this.batching) {
      this.unwritten.push(row);
      this.writing ??= this.writeBatches();
      return;
    }
    const write = CancellationScope.nonCancellable(() => auditActivities.appendAuditRecord(row)).catch(
      (err: unknown) => {
        this.auditFailures++;
        log.error('audit row not written', { seq, step: entry.step, error: describeError(err) });
      },
    );
    this.pending.push(write);
  }

  /** Writes the unwritten rows, a batch at a time, until none is left. */
  private async writeBatches(): Promise<void> {
    try {
      while (this.unwritten.length > 0) {
        const rows = this.unwritten.splice(0, AUDIT_BATCH);
        try {
          await CancellationScope.nonCancellable(() => auditActivities.appendAuditRecords({ rows }));
        } catch (err) {
          this.auditFailures += rows.length;
          log.error('audit rows not written', {
            seqs: rows.map((r) => r.details?.['seq']),
            error: describeError(err),
          });
        }
      }
    } finally {
      this.writing = null;
    }
  }

  /** Waits for every audit row started so far. */
  async flush(): Promise<void> {
    while (this.pending.length > 0 || this.writing) {
      const batch = this.pending;
      this.pending = [];
      await Promise.all(batch);
      if (this.writing) await this.writing;
    }
  }

  get unwrittenAuditRows(): number {
    return this.auditFailures;
  }

  /** Sends a Telegram message; a failure is recorded as a step and never stops the release. */
  async notify(text: string): Promise<void> {
    try {
      await CancellationScope.nonCancellable(() =>
        notifyActivities.sendMessage({ text: text.slice(0, 4000) }),
      );
    } catch (err) {
      this.note('notify', 'failed', describeError(err));
    }
  }

  /** A Grafana annotation; best effort like `notify`. */
  async annotate(text: string, tags: string[]): Promise<void> {
    try {
      await CancellationScope.nonCancellable(() => notifyActivities.annotate({ text, tags }));
    } catch (err) {
      this.note('grafana-annotation', 'failed', describeError(err));
    }
  }
}
