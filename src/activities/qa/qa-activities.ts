/**
 * The QA verification gate (L4): reads the integration and regression results (a Playwright JSON report,
 * a Newman/Postman JSON report) and summarises them for the workflow, which decides whether to tag.
 */
import fs from 'node:fs';
import type { z } from 'zod';
import { FailureType, failure } from '../../errors';
import {
  NewmanReport,
  PlaywrightReport,
  type PlaywrightSuite,
  type QaFailure,
  type QaSummary,
  SummarizeQaReportInput,
} from './qa-schemas';
import { parseActivityInput } from '../activity-support';

export interface QaActivitiesOptions {
  /** Failures listed in the summary; the rest are counted in `omittedFailures`. 50 by default. */
  maxFailures?: number;
  /** Characters kept of each error text; 2000 by default. */
  maxErrorChars?: number;
  /** Larger reports are refused (PolicyViolation); 200 MiB by default. */
  maxReportBytes?: number;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]/g;

interface Tally {
  total: number;
  passed: number;
  failed: number;
  skipped: number;
  flaky: number;
  failures: QaFailure[];
}

function malformed(format: string, path: string, why: string, issues?: string[]) {
  return failure(
    FailureType.ContractViolation,
    `the ${format} report ${path} is malformed: ${why}; check the reporter configuration of the test run`,
    { details: { format, path, ...(issues ? { issues } : {}) } },
  );
}

/**
 * Builds the QA activities.
 *
 * `summarizeQaReport` reads a report file and returns `{total, passed, failed, skipped, flaky, failures}`.
 * Playwright: one entry per test and project; `flaky` tests passed on a retry and count as passed; errors
 * outside tests (global setup, web server) count as failed entries. Postman: one entry per assertion,
 * plus one failed entry per request or script error and for a run that stopped early. Read-only, so it is
 * idempotent. Fails with `NotFound` when the file is absent, `ContractViolation` when it is not JSON, does
 * not follow the reporter's format or contradicts its own totals, `InvalidInput` for bad input.
 */
export function createQaActivities(options: QaActivitiesOptions = {}) {
  const maxFailures = options.maxFailures ?? 50;
  const maxErrorChars = options.maxErrorChars ?? 2000;
  const maxReportBytes = options.maxReportBytes ?? 200 * 1024 * 1024;

  const clean = (text: string) => text.replace(ANSI, '').trim().slice(0, maxErrorChars);

  async function readJson(path: string, format: string): Promise<unknown> {
    let size: number;
    try {
      size = (await fs.promises.stat(path)).size;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOENT') {
        throw failure(
          FailureType.NotFound,
          `the ${format} report ${path} does not exist; did the test run write it?`,
          {
            details: { format, path },
          },
        );
      }
      throw failure(FailureType.InvalidInput, `the ${format} report ${path} cannot be read (${code})`, {
        details: { format, path, code },
      });
    }
    if (size > maxReportBytes) {
      throw failure(
        FailureType.PolicyViolation,
        `the ${format} report ${path} is ${size} bytes, over the ${maxReportBytes} allowed`,
        {
          details: { format, path, size },
        },
      );
    }
    const text = await fs.promises.readFile(path, 'utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw malformed(format, path, 'it is not JSON');
    }
  }

  function check<S extends z.ZodType>(schema: S, json: unknown, format: string, path: string): z.infer<S> {
    const parsed = schema.safeParse(json);
    if (parsed.success) return parsed.data;
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw malformed(format, path, issues.join('; '), issues);
  }

  function summarizePlaywright(report: PlaywrightReport, path: string): Tally {
    const t: Tally = { total: 0, passed: 0, failed: 0, skipped: 0, flaky: 0, failures: [] };
    const outcomes = { expected: 0, unexpected: 0, flaky: 0, skipped: 0 };
    const walk = (suite: PlaywrightSuite, titles: string[]) => {
      const here = suite.title ? [...titles, suite.title] : titles;
      for (const spec of suite.specs) {
        for (const test of spec.tests) {
          t.total += 1;
          outcomes[test.status] += 1;
          if (test.status === 'expected') t.passed += 1;
          else if (test.status === 'flaky') {
            t.passed += 1;
            t.flaky += 1;
          } else if (test.status === 'skipped') t.skipped += 1;
          else {
            t.failed += 1;
            const last = [...test.results].reverse().find((r) => r.error || (r.errors?.length ?? 0) > 0);
            const messages = (last?.errors?.length ? last.errors : last?.error ? [last.error] : [])
              .map((e) => e.message ?? e.value ?? '')
              .filter(Boolean);
            const status = test.results.at(-1)?.status;
            t.failures.push({
              title: `${[...here, spec.title].join(' › ')}${test.projectName ? ` [${test.projectName}]` : ''}`,
              error: clean(messages.join('\n\n') || `test ended ${status ?? 'without a result'}`),
            });
          }
        }
      }
      for (const child of suite.suites ?? []) walk(child, here);
    };
    for (const suite of report.suites) walk(suite, []);
    const { stats } = report;
    if (
      stats &&
      (stats.expected !== outcomes.expected ||
        stats.unexpected !== outcomes.unexpected ||
        stats.flaky !== outcomes.flaky ||
        stats.skipped !== outcomes.skipped)
    ) {
      throw malformed(
        'playwright',
        path,
        `its stats (${JSON.stringify({ ...stats, duration: undefined })}) disagree with its tests (${JSON.stringify(outcomes)})`,
      );
    }
    for (const e of report.errors) {
      t.total += 1;
      t.failed += 1;
      t.failures.push({ title: '(outside any test)', error: clean(e.message ?? e.value ?? 'error') });
    }
    return t;
  }

  function summarizeNewman(report: NewmanReport, path: string): Tally {
    const { stats, executions, failures } = report.run;
    const skipped = executions.reduce((n, e) => n + (e.assertions ?? []).filter((a) => a.skipped).length, 0);
    const assertionFailures = failures.filter((f) => f.at.startsWith('assertion'));
    const otherFailures = failures.filter((f) => !f.at.startsWith('assertion'));
    if (assertionFailures.length !== stats.assertions.failed) {
      throw malformed(
        'postman',
        path,
        `run.stats.assertions.failed is ${stats.assertions.failed} but run.failures holds ${assertionFailures.length} assertion failures`,
      );
    }
    const passed = stats.assertions.total - stats.assertions.failed - skipped;
    if (passed < 0)
      throw malformed('postman', path, 'it counts more failed and skipped assertions than assertions');
    const list: QaFailure[] = failures.map((f) => ({
      title: `${f.source?.name ?? report.collection.info.name} › ${f.error.test ?? f.at}`,
      error: clean(f.error.message ?? f.error.name ?? 'error'),
    }));
    const aborted = report.run.error !== undefined && report.run.error !== null;
    if (aborted) {
      const e = report.run.error as { message?: unknown };
      list.push({
        title: `${report.collection.info.name} › (run stopped early)`,
        error: clean(typeof e.message === 'string' ? e.message : JSON.stringify(report.run.error)),
      });
    }
    const extra = otherFailures.length + (aborted ? 1 : 0);
    return {
      total: stats.assertions.total + extra,
      passed,
      failed: stats.assertions.failed + extra,
      skipped,
      flaky: 0,
      failures: list,
    };
  }

  async function summarizeQaReport(input: SummarizeQaReportInput): Promise<QaSummary> {
    const { path, format } = parseActivityInput(SummarizeQaReportInput, input, 'summarizeQaReport');
    const json = await readJson(path, format);
    const tally =
      format === 'playwright'
        ? summarizePlaywright(check(PlaywrightReport, json, format, path), path)
        : summarizeNewman(check(NewmanReport, json, format, path), path);
    return {
      format,
      total: tally.total,
      passed: tally.passed,
      failed: tally.failed,
      skipped: tally.skipped,
      flaky: tally.flaky,
      failures: tally.failures.slice(0, maxFailures),
      omittedFailures: Math.max(0, tally.failures.length - maxFailures),
    };
  }

  return { summarizeQaReport };
}

export type QaActivities = ReturnType<typeof createQaActivities>;
