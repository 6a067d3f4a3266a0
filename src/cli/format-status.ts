/**
 * The human-readable reports of the CLI: the `status` of a release, a list of releases, the result of a
 * rollback. Pure: same input, same text; times in UTC; no I/O and no clock (the caller passes `now`).
 */
import type {
  ApprovalRecord,
  BakeSample,
  CompensationRecord,
  RefusedSignal,
  ReleaseStatus,
  ReleaseStep,
  RollbackResult,
} from '../schemas/release';

/** Stands in for an absent value in tables and fields. */
export const NONE = '-';

/**
 * Text that came from outside (comments, reasons, details) on one line and without control characters, so
 * that no one can move the cursor or recolour a terminal through a signal payload.
 */
export function clean(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
}

/** `2025-10-14T10:00:03.512Z` -> `2025-10-14 10:00:03Z`; null -> `-`; text that is not a time, as is. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return NONE;
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return clean(iso);
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** 450 -> `450ms`, 12_300 -> `12s`, 192_000 -> `3m12s`, 3_720_000 -> `1h02m`, 2 days and 3 hours -> `2d03h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return NONE;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}

/** A ratio as a percentage with two decimals: 0.0123 -> `1.23%`; null -> `n/a`. */
export function formatRate(rate: number | null): string {
  return rate === null ? 'n/a' : `${(rate * 100).toFixed(2)}%`;
}

/**
 * Columns padded to their widest cell, two spaces apart, trailing blanks trimmed. Every cell is
 * {@link clean}ed. Rows shorter than the header leave their last cells empty.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const cells = [header, ...rows].map((row) => header.map((_, i) => clean(row[i] ?? '')));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

const indent = (lines: string[]): string[] => lines.map((line) => `  ${line}`);

/** How long a step took, or has taken so far when it is still running. */
function stepDuration(step: ReleaseStep, now: Date): string {
  const start = Date.parse(step.startedAt);
  if (Number.isNaN(start)) return NONE;
  if (step.endedAt === null) {
    return step.status === 'running' ? `${formatDuration(now.getTime() - start)} so far` : NONE;
  }
  return formatDuration(Date.parse(step.endedAt) - start);
}

/** The steps as a table: name, status, started, ended, duration (and detail when any step has one). */
export function formatSteps(steps: readonly ReleaseStep[], now: Date): string[] {
  const withDetail = steps.some((s) => s.detail);
  const header = ['STEP', 'STATUS', 'STARTED', 'ENDED', 'DURATION', ...(withDetail ? ['DETAIL'] : [])];
  return formatTable(
    header,
    steps.map((s) => [
      s.name,
      s.status,
      formatTime(s.startedAt),
      formatTime(s.endedAt),
      stepDuration(s, now),
      s.detail ?? '',
    ]),
  );
}

function formatApprovals(approvals: readonly ApprovalRecord[]): string[] {
  return formatTable(
    ['DECISION', 'BY', 'AT', 'DIGEST', 'COMMENT'],
    approvals.map((a) => [a.decision, a.approver, formatTime(a.at), a.digest ?? NONE, a.comment ?? '']),
  );
}

function formatRefused(refused: readonly RefusedSignal[]): string[] {
  return formatTable(
    ['SIGNAL', 'FROM', 'AT', 'REASON'],
    refused.map((r) => [r.signal, r.from ?? '?', formatTime(r.at), r.reason]),
  );
}

const count = (n: number | null): string => (n === null ? NONE : String(n));

function formatBakeSamples(samples: readonly BakeSample[]): string[] {
  return formatTable(
    [
      'MINUTE',
      'SERVICE',
      'ERROR RATE',
      'THRESHOLD',
      'REQUESTS',
      'MIN REQUESTS',
      'LOG ERRORS',
      'DECISION',
      'NOTE',
    ],
    samples.map((b) => [
      String(b.minute),
      b.service,
      formatRate(b.errorRate),
      formatRate(b.threshold),
      count(b.requests),
      String(b.minRequests),
      b.errorLines === null ? NONE : `${b.errorLines}/${b.maxErrorLines}`,
      b.decision,
      b.note ?? '',
    ]),
  );
}

function formatCompensations(compensations: readonly CompensationRecord[]): string[] {
  return formatTable(
    ['COMPENSATION', 'STATUS', 'AT', 'DETAIL'],
    compensations.map((c) => [c.name, c.status, formatTime(c.at), c.detail ?? '']),
  );
}

/** `label   value` lines, labels padded to the widest; fields whose value is undefined are left out. */
function fields(pairs: [string, string | undefined][]): string[] {
  const present = pairs.filter((p): p is [string, string] => p[1] !== undefined);
  const width = Math.max(...present.map(([label]) => label.length));
  return present.map(([label, value]) => `${label.padEnd(width)}  ${clean(value)}`);
}

/** A section: its heading, then its table indented, or `heading none` when it is empty. */
function section(
  heading: string,
  items: readonly unknown[],
  table: () => string[],
  empty = 'none',
): string[] {
  if (items.length === 0) return [`${heading}: ${empty}`];
  return [`${heading} (${items.length}):`, ...indent(table())];
}

/** `Approvals (1 approved, 2 required):` and the decisions, or `Approvals: none (2 required)`. */
function approvalsSection(status: ReleaseStatus): string[] {
  const required = status.requiredApprovals === null ? undefined : `${status.requiredApprovals} required`;
  if (status.approvals.length === 0) return [`Approvals: none${required ? ` (${required})` : ''}`];
  const approved = status.approvals.filter((a) => a.decision === 'approved').length;
  return [
    `Approvals (${[`${approved} approved`, required].filter(Boolean).join(', ')}):`,
    ...indent(formatApprovals(status.approvals)),
  ];
}

/**
 * The `status` of a release as a report for people: phase and what the release is bound to, then
 * approvals, refused signals, steps, bake samples and compensations, then the outcome. Ends with a newline.
 * `now` is only used for the duration of steps still running.
 */
export function formatReleaseStatus(status: ReleaseStatus, now: Date): string {
  const strategy = `${status.strategy ?? 'as configured for production'}${status.hotfix ? ' (hotfix)' : ''}`;
  const header = [
    `Release ${clean(status.version)}: ${status.phase}${status.terminal ? ' (ended)' : ''}`,
    ...indent(
      fields([
        ['commit', status.commit],
        ['requested by', status.requestedBy],
        ['strategy', strategy],
        ['digest', status.digest ?? NONE],
        ['previous', status.previousDigest ?? undefined],
        ['rc tag', status.rcTag ?? undefined],
        ['queue', status.queuePosition === null ? undefined : `position ${status.queuePosition} (1 = next)`],
        [
          'freeze',
          status.freeze ? `${status.freeze.window} until ${formatTime(status.freeze.until)}` : undefined,
        ],
        ['outcome', status.outcome ?? undefined],
      ]),
    ),
  ];
  return blocks([
    header,
    approvalsSection(status),
    section('Refused signals', status.refused, () => formatRefused(status.refused)),
    section('Steps', status.steps, () => formatSteps(status.steps, now), 'none yet'),
    section('Bake samples', status.bakeSamples, () => formatBakeSamples(status.bakeSamples), 'none yet'),
    section('Compensations', status.compensations, () => formatCompensations(status.compensations)),
  ]);
}

/** Blocks of lines, a blank line around each block of more than one line; ends with a newline. */
function blocks(parts: readonly string[][]): string {
  const lines: string[] = [];
  parts.forEach((part, i) => {
    if (i > 0 && (part.length > 1 || parts[i - 1]!.length > 1)) lines.push('');
    lines.push(...part);
  });
  return `${lines.join('\n')}\n`;
}

/** One release as `release list` shows it. Times are ISO 8601 or null. */
export interface ReleaseListRow {
  version: string | null;
  phase: string | null;
  status: string;
  workflowId: string;
  startTime: string;
  closeTime: string | null;
}

/** The table of `release list`, newest first as given. Ends with a newline. */
export function formatReleaseList(rows: readonly ReleaseListRow[]): string {
  const table = formatTable(
    ['VERSION', 'PHASE', 'STATUS', 'STARTED', 'CLOSED', 'WORKFLOW ID'],
    rows.map((r) => [
      r.version ?? '?',
      r.phase ?? '?',
      r.status,
      formatTime(r.startTime),
      formatTime(r.closeTime),
      r.workflowId,
    ]),
  );
  return `${table.join('\n')}\n`;
}

/** The result of a rollback: what was restored, then its steps. Ends with a newline. */
export function formatRollbackResult(result: RollbackResult, now: Date): string {
  return blocks([
    [
      `Rolled back release ${clean(result.version)}`,
      ...indent(
        fields([
          ['restored digest', result.restoredDigest ?? 'none (no previous revision recorded)'],
          [
            'database',
            result.databaseRestored ? 'restored from the pre-deployment snapshot' : 'not restored',
          ],
        ]),
      ),
    ],
    section('Steps', result.steps, () => formatSteps(result.steps, now), 'none'),
  ]);
}
