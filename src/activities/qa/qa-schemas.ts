/**
 * The QA verification gate (L4): the report formats it reads and the summary it returns. The report
 * schemas follow the documented output of Playwright's `json` reporter (`JSONReport` in
 * `@playwright/test/reporter`) and Newman's `json` reporter (the run summary: `collection`, `run.stats`,
 * `run.executions`, `run.failures`, `run.error`); they check the fields the summary reads and let the rest
 * through.
 */
import { z } from 'zod';

const count = z.number().int().nonnegative();

// ---- Playwright JSON reporter ----

export const PlaywrightTestError = z.object({
  message: z.string().optional(),
  stack: z.string().optional(),
  value: z.string().optional(),
});

const PlaywrightTestStatus = z.enum(['passed', 'failed', 'timedOut', 'skipped', 'interrupted']);

export const PlaywrightTestResult = z.object({
  status: PlaywrightTestStatus.optional(),
  retry: count,
  error: PlaywrightTestError.optional(),
  errors: z.array(PlaywrightTestError).optional(),
});

export const PlaywrightTest = z.object({
  projectName: z.string(),
  expectedStatus: PlaywrightTestStatus,
  status: z.enum(['skipped', 'expected', 'unexpected', 'flaky']),
  results: z.array(PlaywrightTestResult),
});

export const PlaywrightSpec = z.object({
  title: z.string(),
  file: z.string(),
  line: z.number().optional(),
  tests: z.array(PlaywrightTest),
});

export interface PlaywrightSuite {
  title: string;
  file?: string;
  specs: z.infer<typeof PlaywrightSpec>[];
  suites?: PlaywrightSuite[];
}
export const PlaywrightSuite: z.ZodType<PlaywrightSuite> = z.lazy(() =>
  z.object({
    title: z.string(),
    file: z.string().optional(),
    specs: z.array(PlaywrightSpec),
    suites: z.array(PlaywrightSuite).optional(),
  }),
);

export const PlaywrightReport = z.object({
  suites: z.array(PlaywrightSuite),
  /** Errors outside any test (global setup, a web server that did not start, no tests found). */
  errors: z.array(PlaywrightTestError),
  stats: z
    .object({
      expected: count,
      unexpected: count,
      flaky: count,
      skipped: count,
      duration: z.number().optional(),
    })
    .optional(),
});
export type PlaywrightReport = z.infer<typeof PlaywrightReport>;

// ---- Newman (Postman) JSON reporter ----

const NewmanStat = z.object({ total: count, pending: count, failed: count });

export const NewmanFailure = z.object({
  error: z.object({
    name: z.string().optional(),
    message: z.string().optional(),
    /** The `pm.test` name, for assertion failures. */
    test: z.string().optional(),
  }),
  /** Where it happened: `assertion:0 in test-script`, `request`, `test-script:3:5`, ... */
  at: z.string(),
  source: z.object({ name: z.string().optional() }).optional(),
});

export const NewmanReport = z.object({
  collection: z.object({ info: z.object({ name: z.string() }) }),
  run: z.object({
    stats: z.object({ requests: NewmanStat, assertions: NewmanStat }),
    executions: z.array(
      z.object({
        item: z.object({ name: z.string() }).optional(),
        assertions: z.array(z.object({ assertion: z.string(), skipped: z.boolean().optional() })).optional(),
      }),
    ),
    failures: z.array(NewmanFailure),
    /** A fatal error that stopped the run early. */
    error: z.unknown().optional(),
  }),
});
export type NewmanReport = z.infer<typeof NewmanReport>;

// ---- The activity ----

export const SummarizeQaReportInput = z.strictObject({
  path: z.string().min(1),
  format: z.enum(['playwright', 'postman']),
});
export type SummarizeQaReportInput = z.infer<typeof SummarizeQaReportInput>;

export const QaFailure = z.object({
  /** `file › describe › test [project]` (Playwright) or `request › test` (Postman). */
  title: z.string(),
  /** The first lines of the error, without terminal colours. */
  error: z.string(),
});
export type QaFailure = z.infer<typeof QaFailure>;

export const QaSummary = z.object({
  format: z.enum(['playwright', 'postman']),
  /** Playwright: tests (one per project); Postman: assertions, plus request and script errors. */
  total: count,
  passed: count,
  failed: count,
  skipped: count,
  /** Playwright tests that passed on a retry (counted in `passed`). */
  flaky: count,
  failures: z.array(QaFailure),
  /** Failures left out of `failures` to keep the result small. */
  omittedFailures: count,
});
export type QaSummary = z.infer<typeof QaSummary>;
