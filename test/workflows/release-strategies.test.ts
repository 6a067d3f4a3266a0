/**
 * The happy path of a release with each production strategy (S1-S4), end to end on the embedded dev
 * server with time skipping, the real worker and activities, and the platform sandbox.
 */
import { describe, expect, it } from 'vitest';
import type { ReleaseResult } from '../../src/schemas/release';
import { approveSignal, qaResultSignal } from '../../src/workflows/definitions';
import { expectNoContractViolations, expectNoTrafficBeforeApproval, liveDigests } from './release-invariants';
import { inPhase, recordHistory, waitForStatus } from './release-harness';
import { useReleaseHarness } from './use-release-harness';

const h = useReleaseHarness({
  configure: (config) => {
    const production = config.environments['production']!;
    production.alternativeStrategies.push({
      type: 'rolling',
      batchSize: 2,
      pauseBetweenBatches: 30_000,
      acknowledgeNoInstantRollback: true,
    });
    return config;
  },
});

async function releaseThrough(version: string, strategy: 'blue-green' | 'canary' | 'shadow' | 'rolling') {
  const digest = await h.sandbox.pushImage(version);
  const before = await liveDigests(h.sandbox);
  return h.withWorker(async () => {
    const handle = await h.startRelease({ version, strategy });
    await waitForStatus(h, handle, inPhase('qa-gate'), 'the QA gate');
    await handle.signal(qaResultSignal, {
      passed: true,
      reporter: 'qa-bot',
      reportUrl: 'https://qa.example/run/1',
    });
    const waiting = await waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval');
    expect(waiting.digest).toBe(digest);
    expect(await liveDigests(h.sandbox), 'production changed before approval').toEqual(before);
    await handle.signal(approveSignal, { approver: 'tech-lead', comment: 'ship it' });
    const result = (await handle.result()) as ReleaseResult;
    return { result, digest, before };
  });
}

describe.each(['blue-green', 'canary', 'shadow', 'rolling'] as const)('a %s release', (strategy) => {
  it('goes from commit to production, tagged, baked, recorded and announced', async () => {
    const version = { 'blue-green': '2.1.0', canary: '2.2.0', shadow: '2.3.0', rolling: '2.4.0' }[strategy];
    const { result, digest, before } = await releaseThrough(version, strategy);
    const { status } = result;
    await recordHistory(h, `release-v${version}`, `release-${strategy}`);

    expect(status.phase, status.outcome ?? '').toBe('released');
    expect(status.terminal).toBe(true);
    expect(status.strategy).toBe(strategy);
    expect(status.digest).toBe(digest);
    expect(status.previousDigest).toBe(Object.values(before)[0]);
    expect(status.rcTag).toBe(`v${version}-rc.1`);
    expect(result.tag).toBe(`v${version}`);
    expect(result.changelogEntry).toMatch(
      new RegExp(`^## \\[${version.replaceAll('.', '\\.')}\\] - \\d{4}-\\d{2}-\\d{2}`),
    );
    expect(result.docsSnapshotPath).toBe(`docs/releases/${version}/`);
    expect(status.approvals.map((a) => [a.approver, a.decision])).toEqual([['tech-lead', 'approved']]);
    expect(status.steps.filter((s) => s.status !== 'completed' && s.status !== 'skipped')).toEqual([]);
    expectNoTrafficBeforeApproval(status);

    // Every production service now serves the new digest.
    expect(Object.values(await liveDigests(h.sandbox))).toEqual(Object.values(before).map(() => digest));

    // Bake (M4): ten one-minute samples per service, all healthy and kept.
    const bake = status.bakeSamples.filter((s) => s.errorRateQuery && s.decision === 'healthy');
    expect(bake.length).toBeGreaterThanOrEqual(10 * Object.keys(before).length);

    // Tags in the repository, the annotation, the announcement.
    expect(await h.sandbox.tags()).toEqual(expect.arrayContaining([`v${version}-rc.1`, `v${version}`]));
    expect(h.sandbox.fakes.grafana.annotations.some((a) => a.text.includes(`v${version}`))).toBe(true);
    expect(h.sandbox.fakes.telegram.sent.some((m) => m.text.startsWith(`Released v${version}`))).toBe(true);

    // The audit log tells the same story (H4).
    const audit = await h.sandbox.auditRows(`release-v${version}`);
    const actions = audit.map((r) => r.action);
    expect(actions).toContain('release-requested');
    expect(audit.some((r) => r.action === 'approved' && r.actor === 'tech-lead' && r.digest === digest)).toBe(
      true,
    );
    expect(audit.filter((r) => r.action === 'sample').length).toBe(bake.length);
    expect(audit.at(-1)?.decision).toBe('released');

    expect(result.rollbackPlan?.previousDigest).toBe(status.previousDigest);
    expectNoContractViolations(h.sandbox);
  }, 120_000);
});
