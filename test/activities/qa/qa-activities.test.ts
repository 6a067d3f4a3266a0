import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQaActivities, type QaActivitiesOptions } from '../../../src/activities/qa/qa-activities';
import type { SummarizeQaReportInput } from '../../../src/activities/qa/qa-schemas';

const FIXTURES = path.join(__dirname, 'fixtures');
const PLAYWRIGHT = path.join(FIXTURES, 'playwright-report.json');
const NEWMAN = path.join(FIXTURES, 'newman-report.json');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qa-'));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function summarize(input: SummarizeQaReportInput, options?: QaActivitiesOptions) {
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  const { summarizeQaReport } = createQaActivities(options);
  return env.run<
    [SummarizeQaReportInput],
    Awaited<ReturnType<typeof summarizeQaReport>>,
    typeof summarizeQaReport
  >(summarizeQaReport, input);
}

/** Writes a variant of a fixture, changed by `edit`. */
function variant(fixture: string, name: string, edit: (report: Record<string, unknown>) => unknown): string {
  const report = JSON.parse(fs.readFileSync(fixture, 'utf8')) as Record<string, unknown>;
  const file = path.join(tmp, name);
  fs.writeFileSync(file, JSON.stringify(edit(report) ?? report));
  return file;
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

describe('summarizeQaReport: Playwright', () => {
  it('counts tests per project: flaky ones pass, skipped ones are apart, failures carry the last error', async () => {
    const out = await summarize({ path: PLAYWRIGHT, format: 'playwright' });
    expect(out).toMatchObject({ format: 'playwright', total: 8, passed: 5, failed: 1, skipped: 2, flaky: 1 });
    expect(out.failures).toEqual([
      {
        title: 'checkout.spec.ts › checkout › applies the voucher ACEH10 [chromium]',
        error: 'Test timeout of 30000ms exceeded.',
      },
    ]);
    expect(out.omittedFailures).toBe(0);
  });

  it('strips terminal colours from error messages', async () => {
    const file = variant(PLAYWRIGHT, 'colours.json', (r) => {
      const suites = r['suites'] as { suites: { specs: { tests: { results: unknown[] }[] }[] }[] }[];
      const test = suites[0]!.suites[0]!.specs[1]!.tests[0]!;
      test.results = test.results.slice(0, 1);
      return r;
    });
    const out = await summarize({ path: file, format: 'playwright' });
    expect(out.failures[0]?.error).toBe(
      'Error: expect(locator).toHaveText(expected)\n\nLocator: getByTestId(\'order-total\')\nExpected string: "Rp 90.000"\nReceived string: "Rp 100.000"',
    );
  });

  it('counts errors outside any test as failures (a run where nothing ran is not a pass)', async () => {
    const file = variant(PLAYWRIGHT, 'global-error.json', (r) => ({
      ...r,
      suites: [],
      errors: [{ message: 'Error: Timed out waiting 60000ms from config.webServer.' }],
      stats: {
        startTime: '2025-10-13T08:01:11.412Z',
        duration: 60512,
        expected: 0,
        skipped: 0,
        unexpected: 0,
        flaky: 0,
      },
    }));
    const out = await summarize({ path: file, format: 'playwright' });
    expect(out).toMatchObject({ total: 1, passed: 0, failed: 1 });
    expect(out.failures[0]).toEqual({
      title: '(outside any test)',
      error: 'Error: Timed out waiting 60000ms from config.webServer.',
    });
  });

  it('keeps the failure list short', async () => {
    const out = await summarize({ path: PLAYWRIGHT, format: 'playwright' }, { maxFailures: 0 });
    expect(out.failures).toEqual([]);
    expect(out.omittedFailures).toBe(1);
  });

  it.each([
    [
      'stats that disagree with the tests',
      (r: Record<string, unknown>) => ({ ...r, stats: { expected: 8, unexpected: 0, flaky: 0, skipped: 0 } }),
    ],
    [
      'an unknown test status',
      (r: Record<string, unknown>) =>
        JSON.parse(JSON.stringify(r).replace('"status":"flaky"', '"status":"retried"')) as unknown,
    ],
    ['no suites', (r: Record<string, unknown>) => ({ ...r, suites: undefined })],
    ['a Newman report', () => JSON.parse(fs.readFileSync(NEWMAN, 'utf8')) as unknown],
  ])('fails with ContractViolation for %s', async (_label, edit) => {
    const file = variant(PLAYWRIGHT, 'broken.json', edit);
    const f = await failureOf(summarize({ path: file, format: 'playwright' }));
    expect(f.type).toBe('ContractViolation');
    expect(f.nonRetryable).toBe(true);
  });
});

describe('summarizeQaReport: Postman (Newman)', () => {
  it('counts assertions, skipped assertions and request errors', async () => {
    const out = await summarize({ path: NEWMAN, format: 'postman' });
    expect(out).toMatchObject({ format: 'postman', total: 9, passed: 6, failed: 2, skipped: 1, flaky: 0 });
    expect(out.failures).toEqual([
      {
        title: 'POST /orders › Status code is 201',
        error: 'expected response to have status code 201 but got 422',
      },
      { title: 'GET /admin/stats › request', error: 'connect ECONNREFUSED 10.0.4.12:443' },
    ]);
  });

  it('counts a run that stopped early as a failure', async () => {
    const file = variant(NEWMAN, 'aborted.json', (r) => {
      (r['run'] as Record<string, unknown>)['error'] = {
        name: 'Error',
        message: 'collection run aborted: SIGTERM',
      };
      return r;
    });
    const out = await summarize({ path: file, format: 'postman' });
    expect(out).toMatchObject({ total: 10, failed: 3 });
    expect(out.failures.at(-1)).toEqual({
      title: 'Aceh Commerce API - regression › (run stopped early)',
      error: 'collection run aborted: SIGTERM',
    });
  });

  it.each([
    [
      'totals that disagree with the failures',
      (r: Record<string, unknown>) => {
        (r['run'] as { stats: { assertions: { failed: number } } }).stats.assertions.failed = 0;
        return r;
      },
    ],
    ['no run', (r: Record<string, unknown>) => ({ collection: r['collection'] })],
    ['a Playwright report', () => JSON.parse(fs.readFileSync(PLAYWRIGHT, 'utf8')) as unknown],
  ])('fails with ContractViolation for %s', async (_label, edit) => {
    const file = variant(NEWMAN, 'broken-newman.json', edit);
    const f = await failureOf(summarize({ path: file, format: 'postman' }));
    expect(f.type).toBe('ContractViolation');
  });
});

describe('summarizeQaReport: files and input', () => {
  it('fails with NotFound for a missing report and ContractViolation for one that is not JSON', async () => {
    expect(
      (await failureOf(summarize({ path: path.join(tmp, 'absent.json'), format: 'playwright' }))).type,
    ).toBe('NotFound');
    const garbage = path.join(tmp, 'garbage.json');
    fs.writeFileSync(garbage, '<html>502 Bad Gateway</html>');
    const f = await failureOf(summarize({ path: garbage, format: 'postman' }));
    expect(f.type).toBe('ContractViolation');
    expect(f.message).toContain('not JSON');
  });

  it('refuses an oversized report and an unknown format', async () => {
    expect(
      (await failureOf(summarize({ path: NEWMAN, format: 'postman' }, { maxReportBytes: 100 }))).type,
    ).toBe('PolicyViolation');
    const bad = await failureOf(
      summarize({ path: NEWMAN, format: 'junit' } as unknown as SummarizeQaReportInput),
    );
    expect(bad.type).toBe('InvalidInput');
  });
});
