/** The reports of src/cli/format-status.ts: pure functions, no Temporal. */
import { describe, expect, it } from 'vitest';
import {
  clean,
  formatDuration,
  formatRate,
  formatReleaseList,
  formatReleaseStatus,
  formatRollbackResult,
  formatSteps,
  formatTable,
  formatTime,
} from '../../src/cli/format-status';
import type { ReleaseStatus } from '../../src/schemas/release';

const NOW = new Date('2025-10-14T10:30:00.000Z');
const DIGEST = `sha256:${'1'.repeat(64)}`;
const PREVIOUS = `sha256:${'2'.repeat(64)}`;

/** A release that went through everything the report shows. */
function fullStatus(): ReleaseStatus {
  return {
    version: '1.2.0',
    commit: '0123456789abcdef0123456789abcdef01234567',
    requestedBy: 'alice',
    strategy: 'canary',
    hotfix: true,
    phase: 'compensating',
    terminal: false,
    queuePosition: 2,
    digest: DIGEST,
    previousDigest: PREVIOUS,
    rcTag: 'v1.2.0-rc1',
    requiredApprovals: 2,
    approvals: [
      {
        approver: 'bob',
        decision: 'approved',
        at: '2025-10-14T10:00:00.000Z',
        digest: DIGEST,
        comment: 'ok',
      },
      { approver: 'carol', decision: 'freeze-override', at: '2025-10-14T10:01:30.250Z' },
    ],
    refused: [
      { signal: 'approve', from: null, reason: 'approver: must be a login', at: '2025-10-14T09:59:00Z' },
    ],
    steps: [
      {
        name: 'build',
        status: 'completed',
        startedAt: '2025-10-14T09:00:00.000Z',
        endedAt: '2025-10-14T09:03:12.000Z',
      },
      {
        name: 'production-deploy',
        status: 'failed',
        startedAt: '2025-10-14T10:05:00.000Z',
        endedAt: '2025-10-14T10:05:00.450Z',
        detail: 'Coolify answered 502',
      },
      { name: 'compensate', status: 'running', startedAt: '2025-10-14T10:29:48.000Z', endedAt: null },
    ],
    bakeSamples: [
      {
        minute: 1,
        at: '2025-10-14T10:06:00Z',
        service: 'web',
        errorRateQuery: 'sum(rate(...))',
        errorRate: 0.004,
        requests: 1200,
        threshold: 0.05,
        minRequests: 100,
        errorLines: 3,
        maxErrorLines: 50,
        decision: 'healthy',
      },
      {
        minute: 2,
        at: '2025-10-14T10:07:00Z',
        service: 'web',
        errorRateQuery: 'sum(rate(...))',
        errorRate: null,
        requests: null,
        threshold: 0.05,
        minRequests: 100,
        errorLines: null,
        maxErrorLines: 50,
        decision: 'backend-error',
        note: 'Prometheus unavailable',
      },
    ],
    compensations: [
      { name: 'switchTraffic', status: 'completed', at: '2025-10-14T10:29:50Z' },
      { name: 'restoreSnapshot', status: 'failed', at: '2025-10-14T10:29:55Z', detail: 'pg_restore exit 1' },
    ],
    freeze: { window: 'lebaran', until: '2025-10-20T00:00:00Z' },
    outcome: 'error rate above 5% for 2 samples',
  };
}

describe('formatReleaseStatus', () => {
  it('renders every part of a full status', () => {
    expect(formatReleaseStatus(fullStatus(), NOW)).toBe(
      [
        'Release 1.2.0: compensating',
        '  commit        0123456789abcdef0123456789abcdef01234567',
        '  requested by  alice',
        '  strategy      canary (hotfix)',
        `  digest        ${DIGEST}`,
        `  previous      ${PREVIOUS}`,
        '  rc tag        v1.2.0-rc1',
        '  queue         position 2 (1 = next)',
        '  freeze        lebaran until 2025-10-20 00:00:00Z',
        '  outcome       error rate above 5% for 2 samples',
        '',
        'Approvals (1 approved, 2 required):',
        `  DECISION         BY     AT                    DIGEST${' '.repeat(DIGEST.length - 6)}  COMMENT`,
        `  approved         bob    2025-10-14 10:00:00Z  ${DIGEST}  ok`,
        `  freeze-override  carol  2025-10-14 10:01:30Z  -`,
        '',
        'Refused signals (1):',
        '  SIGNAL   FROM  AT                    REASON',
        '  approve  ?     2025-10-14 09:59:00Z  approver: must be a login',
        '',
        'Steps (3):',
        '  STEP               STATUS     STARTED               ENDED                 DURATION    DETAIL',
        '  build              completed  2025-10-14 09:00:00Z  2025-10-14 09:03:12Z  3m12s',
        '  production-deploy  failed     2025-10-14 10:05:00Z  2025-10-14 10:05:00Z  450ms       Coolify answered 502',
        '  compensate         running    2025-10-14 10:29:48Z  -                     12s so far',
        '',
        'Bake samples (2):',
        '  MINUTE  SERVICE  ERROR RATE  THRESHOLD  REQUESTS  MIN REQUESTS  LOG ERRORS  DECISION       NOTE',
        '  1       web      0.40%       5.00%      1200      100           3/50        healthy',
        '  2       web      n/a         5.00%      -         100           -           backend-error  Prometheus unavailable',
        '',
        'Compensations (2):',
        '  COMPENSATION     STATUS     AT                    DETAIL',
        '  switchTraffic    completed  2025-10-14 10:29:50Z',
        '  restoreSnapshot  failed     2025-10-14 10:29:55Z  pg_restore exit 1',
        '',
      ].join('\n'),
    );
  });

  it('renders a fresh release briefly: no optional fields, the empty sections on one line each', () => {
    const status: ReleaseStatus = {
      ...fullStatus(),
      strategy: null,
      hotfix: false,
      phase: 'validating',
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
    expect(formatReleaseStatus(status, NOW)).toBe(
      [
        'Release 1.2.0: validating',
        '  commit        0123456789abcdef0123456789abcdef01234567',
        '  requested by  alice',
        '  strategy      as configured for production',
        '  digest        -',
        '',
        'Approvals: none',
        'Refused signals: none',
        'Steps: none yet',
        'Bake samples: none yet',
        'Compensations: none',
        '',
      ].join('\n'),
    );
  });

  it('marks a terminal phase as ended and counts required approvals when there are none yet', () => {
    const text = formatReleaseStatus(
      { ...fullStatus(), phase: 'rejected', terminal: true, approvals: [], requiredApprovals: 1 },
      NOW,
    );
    expect(text.split('\n')[0]).toBe('Release 1.2.0: rejected (ended)');
    expect(text).toContain('\nApprovals: none (1 required)\n');
  });

  it('keeps control characters from signal payloads out of the terminal', () => {
    const status = fullStatus();
    status.approvals = [
      { approver: 'bob', decision: 'approved', at: '2025-10-14T10:00:00Z', comment: 'ok\u001b[2J\nrm -rf' },
    ];
    const text = formatReleaseStatus(status, NOW);
    expect(text).not.toContain('\u001b');
    expect(text).toContain('ok [2J rm -rf');
  });
});

describe('pieces', () => {
  it.each([
    [0, '0ms'],
    [450, '450ms'],
    [12_300, '12s'],
    [192_000, '3m12s'],
    [3_720_000, '1h02m'],
    [183_600_000, '2d03h'],
    [-1, '-'],
    [Number.NaN, '-'],
  ])('formatDuration(%d) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([
    ['2025-10-14T10:00:03.512Z', '2025-10-14 10:00:03Z'],
    ['2025-10-14T12:00:03+02:00', '2025-10-14 10:00:03Z'],
    [null, '-'],
    ['soon', 'soon'],
  ])('formatTime(%j) = %s', (iso, text) => {
    expect(formatTime(iso)).toBe(text);
  });

  it('formats rates as percentages, null as n/a', () => {
    expect(formatRate(0.0123)).toBe('1.23%');
    expect(formatRate(0)).toBe('0.00%');
    expect(formatRate(null)).toBe('n/a');
  });

  it('pads columns to the widest cell, trims trailing blanks, fills missing cells', () => {
    expect(formatTable(['A', 'LONG'], [['xyz', '1'], ['y']])).toEqual(['A    LONG', 'xyz  1', 'y']);
  });

  it('clean keeps text on one line without control characters', () => {
    expect(clean(' a\tb\r\nc\u0007 ')).toBe('a b c');
  });

  it('a step that ended without an end time, or never started properly, has no duration', () => {
    const lines = formatSteps(
      [
        { name: 'skipped', status: 'skipped', startedAt: '2025-10-14T10:00:00Z', endedAt: null },
        { name: 'odd', status: 'completed', startedAt: 'unknown', endedAt: null },
      ],
      NOW,
    );
    expect(lines).toEqual([
      'STEP     STATUS     STARTED               ENDED  DURATION',
      'skipped  skipped    2025-10-14 10:00:00Z  -      -',
      'odd      completed  unknown               -      -',
    ]);
  });
});

describe('formatReleaseList', () => {
  it('one row per release, unknown search attributes as ?', () => {
    expect(
      formatReleaseList([
        {
          version: '1.3.0',
          phase: 'awaiting-approval',
          status: 'RUNNING',
          workflowId: 'release-v1.3.0',
          startTime: '2025-10-14T10:00:00.000Z',
          closeTime: null,
        },
        {
          version: null,
          phase: null,
          status: 'TERMINATED',
          workflowId: 'release-v1.2.0',
          startTime: '2025-10-13T08:00:00.000Z',
          closeTime: '2025-10-13T09:00:00.000Z',
        },
      ]),
    ).toBe(
      [
        'VERSION  PHASE              STATUS      STARTED               CLOSED                WORKFLOW ID',
        '1.3.0    awaiting-approval  RUNNING     2025-10-14 10:00:00Z  -                     release-v1.3.0',
        '?        ?                  TERMINATED  2025-10-13 08:00:00Z  2025-10-13 09:00:00Z  release-v1.2.0',
        '',
      ].join('\n'),
    );
  });
});

describe('formatRollbackResult', () => {
  it('what was restored, then the steps', () => {
    expect(
      formatRollbackResult(
        {
          version: '1.2.0',
          restoredDigest: null,
          databaseRestored: false,
          steps: [
            {
              name: 'deployPreviousRevision',
              status: 'completed',
              startedAt: '2025-10-14T10:00:00Z',
              endedAt: '2025-10-14T10:01:05Z',
            },
          ],
        },
        NOW,
      ),
    ).toBe(
      [
        'Rolled back release 1.2.0',
        '  restored digest  none (no previous revision recorded)',
        '  database         not restored',
        '',
        'Steps (1):',
        '  STEP                    STATUS     STARTED               ENDED                 DURATION',
        '  deployPreviousRevision  completed  2025-10-14 10:00:00Z  2025-10-14 10:01:05Z  1m05s',
        '',
      ].join('\n'),
    );
  });
});
