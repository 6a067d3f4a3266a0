/**
 * The QA gate's fetched report (L4): with `release.qaReport` configured the release looks for the test
 * run's JSON report itself, waits durably while it is not there, and passes or fails on what it says.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ReleaseResult } from '../../src/schemas/release';
import { rejectSignal } from '../../src/workflows/definitions';
import { inPhase, recordHistory, waitForStatus } from './release-harness';
import { useReleaseHarness } from './use-release-harness';

const reports = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-release-qa-'));
const reportOf = (version: string) => path.join(reports, version, 'playwright.json');

const h = useReleaseHarness({
  configure: (config) => ({
    ...config,
    release: {
      ...config.release,
      qaReport: {
        path: path.join(reports, '${version}', 'playwright.json'),
        format: 'playwright',
        pollEvery: 300_000,
      },
    },
  }),
});

afterAll(() => {
  fs.rmSync(reports, { recursive: true, force: true });
});

/** A Playwright JSON report with one spec per outcome. */
function writeReport(version: string, outcomes: ('passed' | 'failed')[]): void {
  const specs = outcomes.map((outcome, i) => ({
    title: `checkout ${i + 1}`,
    file: 'checkout.spec.ts',
    line: 10 + i,
    tests: [
      {
        projectName: 'chromium',
        expectedStatus: 'passed',
        status: outcome === 'passed' ? 'expected' : 'unexpected',
        results: [
          outcome === 'passed'
            ? { status: 'passed', retry: 0 }
            : {
                status: 'failed',
                retry: 0,
                error: { message: 'expected total 85000, got 0\n  at checkout.spec.ts:12' },
              },
        ],
      },
    ],
  }));
  const failed = outcomes.filter((o) => o === 'failed').length;
  fs.mkdirSync(path.dirname(reportOf(version)), { recursive: true });
  fs.writeFileSync(
    reportOf(version),
    JSON.stringify({
      suites: [{ title: 'checkout.spec.ts', file: 'checkout.spec.ts', specs }],
      errors: [],
      stats: { expected: outcomes.length - failed, unexpected: failed, flaky: 0, skipped: 0 },
    }),
  );
}

describe('the QA gate with a fetched report', () => {
  it('waits for the report, then passes on it and moves on to approval', async () => {
    await h.sandbox.pushImage('6.0.0');
    const status = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '6.0.0' });
      await waitForStatus(h, handle, inPhase('qa-gate'), 'the QA gate');
      // No report yet: the release keeps waiting, through several looks.
      await h.env.sleep('20 minutes');
      expect((await h.status(handle)).phase).toBe('qa-gate');
      writeReport('6.0.0', ['passed', 'passed', 'passed']);
      const waiting = await waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval', 60_000);
      await handle.signal(rejectSignal, { approver: 'qa-lead', reason: 'enough for this test' });
      await handle.result();
      return waiting;
    });
    await recordHistory(h, 'release-v6.0.0', 'release-qa-report-passed');
    const gate = status.steps.find((s) => s.name === 'qa-gate')!;
    expect(gate.status).toBe('completed');
    expect(gate.detail).toContain('reported by playwright report');
    expect(gate.detail).toContain('3/3 passed, 0 failed');
    expect(Date.parse(gate.endedAt!) - Date.parse(gate.startedAt)).toBeGreaterThanOrEqual(20 * 60_000);
    expect(status.rcTag).toBe('v6.0.0-rc.1');
    const audit = await h.sandbox.auditRows('release-v6.0.0');
    const row = audit.find((r) => r.action === 'qa-report');
    expect(row?.decision).toBe('passed');
    expect(row?.details).toMatchObject({ total: 3, failed: 0, path: reportOf('6.0.0') });
  }, 120_000);

  it('fails the release on a report with failed tests, naming them', async () => {
    await h.sandbox.pushImage('6.0.1');
    writeReport('6.0.1', ['passed', 'failed']);
    const { status } = await h.withWorker(async () => {
      const handle = await h.startRelease({ version: '6.0.1' });
      return (await handle.result()) as ReleaseResult;
    });
    await recordHistory(h, 'release-v6.0.1', 'release-qa-report-failed');
    expect(status.phase).toBe('failed');
    expect(status.outcome).toContain('during qa-gate');
    expect(status.outcome).toContain('1/2 passed, 1 failed');
    expect(status.outcome).toContain('checkout 2');
    expect(status.outcome).toContain('expected total 85000, got 0');
    expect(status.rcTag).toBeNull();
  }, 120_000);
});
