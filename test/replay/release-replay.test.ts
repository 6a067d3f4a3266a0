/**
 * Replays the committed histories of the release paths (test/replay/histories, recorded by the
 * end-to-end tests with RECORD_HISTORIES=1) against today's workflow code: a change that would break the
 * executions already running in production fails here, not there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { HISTORIES_DIR, historyFromJson, workflowBundle } from '../workflows/release-harness';

const files = fs.existsSync(HISTORIES_DIR)
  ? fs
      .readdirSync(HISTORIES_DIR)
      .filter((f) => f.endsWith('.json'))
      .sort()
  : [];

try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Installed already in this process.
}

describe('committed release histories', () => {
  it('are there: every release and rollback path has one', () => {
    const names = files.map((f) => f.replace(/--.*$|\.json$/g, ''));
    for (const path of [
      'release-blue-green',
      'release-canary',
      'release-shadow',
      'release-rolling',
      'release-rejected',
      'release-refused-signals',
      'release-qa-failed',
      'release-smoke-failed',
      'release-bake-rollback',
      'release-bake-inconclusive-approve',
      'release-bake-inconclusive-reject',
      'release-cancel-building',
      'release-cancel-qa-gate',
      'release-cancel-awaiting-approval',
      'release-cancel-baking',
      'release-two-day-approval',
      'release-contention-first',
      'release-contention-second',
      'release-freeze-override',
      'release-freeze-wait',
      'release-hotfix',
      'release-worker-killed',
      'rollback-confirmed',
    ]) {
      expect(names, path).toContain(path);
    }
  });

  it.each(files)(
    '%s replays without nondeterminism',
    async (file) => {
      const record = JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, file), 'utf8')) as {
        workflowId: string;
        history: unknown;
      };
      const history = historyFromJson(record.history);
      expect(history.events.length).toBeGreaterThan(3);
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, record.workflowId);
    },
    60_000,
  );
});
