/**
 * `aceh-release release …` in-process against the embedded dev server and a worker running the stand-in
 * `releaseWorkflow`: what is started (id, task queue, input, search attributes), what each signal command
 * sends and how it reports acceptance or refusal, the status report, the list, and the exit statuses.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleaseStatus } from '../../src/schemas/release';
import { releasePhaseKey, releaseVersionKey } from '../../src/cli/release-commands';
import { DEFAULT_TEMPORAL_ADDRESS } from '../../src/cli/temporal-access';
import { DevServer } from '../../src/devserver/server';
import { waitFor } from '../devserver/helpers';
import { COMMIT, startCliHarness, uniqueVersion, type CliHarness } from './cli-harness';
import { STAND_IN_DIGEST } from './stand-in-constants';

let h: CliHarness;
beforeAll(async () => {
  h = await startCliHarness();
});
afterAll(async () => {
  await h?.close();
});

/** Starts a release requested by alice and returns its version. */
async function started(extra: string[] = []): Promise<string> {
  const version = uniqueVersion();
  const r = await h.run([
    'release',
    'start',
    version,
    '--commit',
    COMMIT,
    '--requested-by',
    'alice',
    ...extra,
  ]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return version;
}

async function statusOf(version: string): Promise<ReleaseStatus> {
  const r = await h.run(['release', 'status', version, '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as ReleaseStatus;
}

describe('release start', () => {
  it('starts releaseWorkflow as release-v<version> on aceh-release with the validated input and search attributes', async () => {
    const version = uniqueVersion();
    const r = await h.run([
      'release',
      'start',
      version,
      '--commit',
      COMMIT,
      '--requested-by',
      'alice',
      '--strategy',
      'canary',
      '--added',
      'Wishlist',
      '--added',
      'Gift cards',
      '--fixed',
      'Cart total rounding',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const handle = h.client.workflow.getHandle(`release-v${version}`);
    const description = await handle.describe();
    expect(r.stdout).toBe(
      `started release ${version} (workflow release-v${version}), run ${description.runId}\n` +
        `follow it with: aceh-release release status ${version} --watch\n`,
    );
    expect(description.type).toBe('releaseWorkflow');
    expect(description.taskQueue).toBe('aceh-release');
    expect(description.typedSearchAttributes.get(releaseVersionKey)).toBe(version);
    const history = await handle.fetchHistory();
    const startedEvent = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const payload = startedEvent?.input?.payloads?.[0]?.data;
    expect(JSON.parse(Buffer.from(payload!).toString('utf8'))).toEqual({
      version,
      commit: COMMIT,
      requestedBy: 'alice',
      strategy: 'canary',
      hotfix: false,
      changes: { added: ['Wishlist', 'Gift cards'], fixed: ['Cart total rounding'], changed: [] },
    });
    const phaseAtStart = startedEvent?.searchAttributes?.indexedFields?.['ReleasePhase']?.data;
    expect(JSON.parse(Buffer.from(phaseAtStart!).toString('utf8'))).toBe('validating');
  });

  it('--json prints the workflow id, run id, version and task queue; --hotfix reaches the input', async () => {
    const version = uniqueVersion();
    const r = await h.run([
      'release',
      'start',
      version,
      '--commit',
      COMMIT,
      '--requested-by',
      'alice',
      '--hotfix',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as Record<string, string>;
    const description = await h.client.workflow.getHandle(`release-v${version}`).describe();
    expect(printed).toEqual({
      workflowId: `release-v${version}`,
      runId: description.runId,
      version,
      taskQueue: 'aceh-release',
    });
    expect((await statusOf(version)).hotfix).toBe(true);
  });

  it('refuses invalid input with the prettified issues, exit 2, and starts nothing', async () => {
    const r = await h.run([
      'release',
      'start',
      'v9.9.9',
      '--commit',
      'abc123',
      '--requested-by',
      'alice smith',
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      [
        'aceh-release: invalid release input, nothing was started:',
        '✖ must be a version such as 1.2.0 (no leading v)',
        '  → at version',
        '✖ must be the full 40-character lower-case commit SHA',
        '  → at commit',
        '✖ must be a login such as alice or ops@luxima.id',
        '  → at requestedBy',
        '',
      ].join('\n'),
    );
    await expect(h.client.workflow.getHandle('release-vv9.9.9').describe()).rejects.toThrow();
  });

  it('refuses an unknown strategy and a missing --commit as usage errors, exit 2', async () => {
    const strategy = await h.run([
      'release',
      'start',
      '1.0.0',
      '--commit',
      COMMIT,
      '--requested-by',
      'a',
      '--strategy',
      'big-bang',
    ]);
    expect(strategy.code).toBe(2);
    expect(strategy.stderr).toContain("option '--strategy <strategy>' argument 'big-bang' is invalid");
    const commit = await h.run(['release', 'start', '1.0.0', '--requested-by', 'alice']);
    expect(commit.code).toBe(2);
    expect(commit.stderr).toContain("required option '--commit <sha>' not specified");
  });

  it('refuses a second start of a running release, naming the status command, exit 1', async () => {
    const version = await started();
    const r = await h.run(['release', 'start', version, '--commit', COMMIT, '--requested-by', 'bob']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `aceh-release: release ${version} (workflow release-v${version}) is already running; ` +
        `see \`aceh-release release status ${version}\`\n`,
    );
  });
});

describe('release approve, reject, cancel, qa', () => {
  it('approve: accepted, then released on the second approval', async () => {
    const version = await started();
    const first = await h.run([
      'release',
      'approve',
      version,
      '--approver',
      'bob',
      '--comment',
      'looks good',
      '--digest',
      STAND_IN_DIGEST,
    ]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      `approval by bob accepted; release ${version} (workflow release-v${version}) is in phase awaiting-approval\n`,
    );
    const second = await h.run(['release', 'approve', version, '--approver', 'carol']);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('is in phase released');
    const status = await statusOf(version);
    expect(status.approvals).toMatchObject([
      { approver: 'bob', decision: 'approved', comment: 'looks good', digest: STAND_IN_DIGEST },
      { approver: 'carol', decision: 'approved' },
    ]);
  });

  it('approve: a refusal by the release (self-approval, wrong digest) is reported with its reason, exit 1', async () => {
    const version = await started();
    const self = await h.run(['release', 'approve', version, '--approver', 'alice']);
    expect(self.code).toBe(1);
    expect(self.stdout).toBe('');
    expect(self.stderr).toBe(
      `aceh-release: approve from alice refused by release ${version} (workflow release-v${version}): ` +
        'self-approval: the requester cannot approve their release\n',
    );
    const digest = await h.run([
      'release',
      'approve',
      version,
      '--approver',
      'bob',
      '--digest',
      `sha256:${'0'.repeat(64)}`,
    ]);
    expect(digest.code).toBe(1);
    expect(digest.stderr).toContain(
      `refused by release ${version} (workflow release-v${version}): digest mismatch`,
    );
    // Refusals by others before this one do not make an accepted approval look refused.
    const ok = await h.run(['release', 'approve', version, '--approver', 'bob']);
    expect(ok.code).toBe(0);
    expect((await statusOf(version)).refused).toHaveLength(2);
  });

  it('approve: an invalid payload is refused locally with the prettified error, exit 2, nothing sent', async () => {
    const version = await started();
    const r = await h.run(['release', 'approve', version, '--approver', 'bob', '--digest', 'latest']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'aceh-release: invalid approval, nothing was sent:\n✖ must be an image digest sha256:<64 hex>\n  → at digest\n',
    );
    const status = await statusOf(version);
    expect(status.approvals).toEqual([]);
    expect(status.refused).toEqual([]);
  });

  it('--no-wait sends without reading the status', async () => {
    const version = await started();
    const r = await h.run(['release', 'approve', version, '--approver', 'alice', '--no-wait']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `sent approve to release ${version} (workflow release-v${version}); not waiting to see whether it was accepted\n`,
    );
    const status = await waitFor(async () => {
      const s = await statusOf(version);
      return s.refused.length > 0 && s;
    }, 'the refusal');
    expect(status.refused[0]).toMatchObject({ signal: 'approve', from: 'alice' });
  });

  it('reject: accepted, the release ends rejected; later signals are refused locally as ended, exit 1', async () => {
    const version = await started();
    const r = await h.run([
      'release',
      'reject',
      version,
      '--approver',
      'bob',
      '--reason',
      'migration not reviewed',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `rejection by bob accepted; release ${version} (workflow release-v${version}) is in phase rejected\n`,
    );
    const status = await statusOf(version);
    expect(status).toMatchObject({
      phase: 'rejected',
      terminal: true,
      outcome: 'rejected by bob: migration not reviewed',
    });
    const late = await h.run(['release', 'approve', version, '--approver', 'carol']);
    expect(late.code).toBe(1);
    expect(late.stderr).toBe(
      `aceh-release: release ${version} (workflow release-v${version}) has ended (rejected): it takes no more signals\n`,
    );
    const lateNoWait = await h.run([
      'release',
      'cancel',
      version,
      '--requested-by',
      'carol',
      '--reason',
      'x',
      '--no-wait',
    ]);
    expect(lateNoWait.code).toBe(1);
    expect(lateNoWait.stderr).toContain('has ended (COMPLETED): it takes no more signals');
  });

  it('reject: a reason is required (usage error, exit 2)', async () => {
    const version = await started();
    const missing = await h.run(['release', 'reject', version, '--approver', 'bob']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--reason <text>' not specified");
    const blank = await h.run(['release', 'reject', version, '--approver', 'bob', '--reason', '  ']);
    expect(blank.code).toBe(2);
    expect(blank.stderr).toContain('a rejection needs a reason');
  });

  it('cancel: accepted, the release ends cancelled with its compensation', async () => {
    const version = await started();
    const r = await h.run([
      'release',
      'cancel',
      version,
      '--requested-by',
      'carol',
      '--reason',
      'wrong commit',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('cancellation by carol accepted;');
    expect(r.stdout).toContain('is in phase cancelled');
    const status = await statusOf(version);
    expect(status.compensations).toMatchObject([{ name: 'releaseEnvironmentLock', status: 'completed' }]);
    const again = await h.run(['release', 'cancel', version, '--requested-by', 'carol', '--reason', 'again']);
    expect(again.code).toBe(1);
  });

  it('qa: --passed is accepted, a second result is refused, exit 1', async () => {
    const version = await started();
    const r = await h.run([
      'release',
      'qa',
      version,
      '--passed',
      '--reporter',
      'qa-bot',
      '--report-url',
      'https://ci.example/run/1',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('QA result (passed) from qa-bot accepted;');
    const again = await h.run(['release', 'qa', version, '--failed', '--reporter', 'qa-bot']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('qaResult from qa-bot refused by release');
    expect(again.stderr).toContain('a QA result was already recorded');
    const status = await statusOf(version);
    expect(status.steps.find((s) => s.name === 'qa-gate')).toMatchObject({ status: 'completed' });
  });

  it.each([
    [['--reporter', 'qa-bot'], 'release qa: give --passed or --failed'],
    [
      ['--passed', '--failed', '--reporter', 'qa-bot'],
      "option '--passed' cannot be used with option '--failed'",
    ],
    [['--failed', '--reporter', 'qa-bot', '--report-url', 'ftp://x/y'], '→ at reportUrl'],
  ])('qa %j: usage error, exit 2', async (args, message) => {
    const version = await started();
    const r = await h.run(['release', 'qa', version, ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect((await statusOf(version)).steps.map((s) => s.name)).toEqual(['validate-input']);
  });

  it('a signal to a release that does not exist: one clear line, exit 1', async () => {
    const version = uniqueVersion();
    for (const wait of [[], ['--no-wait']]) {
      const r = await h.run(['release', 'approve', version, '--approver', 'bob', ...wait]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `aceh-release: release ${version} (workflow release-v${version}) does not exist\n`,
      );
    }
  });

  it('an invalid version argument is a usage error, exit 2', async () => {
    const r = await h.run(['release', 'approve', 'v1.2.0', '--approver', 'bob']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'aceh-release: invalid version "v1.2.0":\n✖ must be a version such as 1.2.0 (no leading v)\n',
    );
  });
});

describe('release status', () => {
  it('prints a readable report: phase, digest, approvals, refused signals, steps', async () => {
    const version = await started(['--strategy', 'blue-green']);
    await h.run(['release', 'approve', version, '--approver', 'alice']);
    await h.run(['release', 'approve', version, '--approver', 'bob', '--comment', 'ship it']);
    const r = await h.run(['release', 'status', version]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`Release ${version}: awaiting-approval`);
    expect(r.stdout).toContain(`  commit        ${COMMIT}\n`);
    expect(r.stdout).toContain('  strategy      blue-green\n');
    expect(r.stdout).toContain(`  digest        ${STAND_IN_DIGEST}\n`);
    expect(r.stdout).toContain('Approvals (1 approved, 2 required):\n  DECISION  BY   AT');
    expect(r.stdout).toMatch(/\n {2}approved {2}bob {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}- {7}ship it\n/);
    expect(r.stdout).toContain('Refused signals (1):\n  SIGNAL   FROM   AT');
    expect(r.stdout).toContain('self-approval: the requester cannot approve their release');
    expect(r.stdout).toContain('Steps (1):\n  STEP            STATUS     STARTED');
    expect(r.stdout).toMatch(/\n {2}validate-input {2}completed {2}.* {2}0ms\n/);
    expect(r.stdout).toContain('Bake samples: none yet\n');
    expect(r.stdout).toContain('Compensations: none\n');
  });

  it('--json prints the status object exactly as the query answers it', async () => {
    const version = await started();
    await h.run(['release', 'qa', version, '--failed', '--reporter', 'qa-bot']);
    const r = await h.run(['release', 'status', version, '--json']);
    expect(r.code).toBe(0);
    const direct = await h.client.workflow.getHandle(`release-v${version}`).query<ReleaseStatus>('status');
    expect(JSON.parse(r.stdout)).toEqual(direct);
    expect(r.stdout).toBe(`${JSON.stringify(direct, null, 2)}\n`);
  });

  it('a release that does not exist: one clear line, exit 1', async () => {
    const version = uniqueVersion();
    const r = await h.run(['release', 'status', version]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`aceh-release: release ${version} (workflow release-v${version}) does not exist\n`);
  });

  it('--watch re-queries until the release ends and exits by how it ended', async () => {
    const version = await started();
    const waits: number[] = [];
    const approver = ['bob', 'carol'];
    // Each pause of --watch is where the world moves on: one approval per pause.
    const sleep = async (ms: number) => {
      waits.push(ms);
      const next = approver.shift();
      if (next)
        await h.client.workflow.getHandle(`release-v${version}`).signal('approve', { approver: next });
    };
    const released = await h.run(['release', 'status', version, '--watch'], { sleep });
    expect(released.code).toBe(0);
    expect(waits.length).toBeGreaterThanOrEqual(2);
    expect(waits.every((ms) => ms === 2000)).toBe(true);
    const reports = released.stdout.split(/\n(?=Release )/);
    expect(reports[0]).toMatch(/^Release .*: awaiting-approval\n/);
    expect(reports.at(-1)).toMatch(/^Release .*: released \(ended\)\n/);

    const other = await started();
    const rejected = await h.run(['release', 'status', other, '--watch', '--json'], {
      sleep: async () => {
        await h.client.workflow
          .getHandle(`release-v${other}`)
          .signal('reject', { approver: 'bob', reason: 'no' });
      },
    });
    expect(rejected.code).toBe(1);
    const documents = rejected.stdout.split(/\n(?=\{)/).map((d) => JSON.parse(d) as ReleaseStatus);
    expect(documents.map((d) => d.phase)).toEqual(['awaiting-approval', 'rejected']);
  });
});

describe('release list', () => {
  it('lists releases newest first with version, phase, status and times; --phase filters', async () => {
    const a = await started();
    const b = await started();
    await h.run(['release', 'reject', b, '--approver', 'bob', '--reason', 'not now']);
    await waitFor(async () => {
      const info = await h.client.workflow.getHandle(`release-v${b}`).describe();
      return info.typedSearchAttributes.get(releasePhaseKey) === 'rejected';
    }, 'the rejected phase in visibility');

    const all = await h.run(['release', 'list', '--json', '--limit', '1000']);
    expect(all.code).toBe(0);
    const rows = JSON.parse(all.stdout) as {
      version: string;
      phase: string;
      status: string;
      startTime: string;
    }[];
    const starts = rows.map((r) => r.startTime);
    expect(starts).toEqual([...starts].sort().reverse());
    const ia = rows.findIndex((r) => r.version === a);
    const ib = rows.findIndex((r) => r.version === b);
    expect(ib).toBeGreaterThanOrEqual(0);
    expect(ib).toBeLessThan(ia);
    expect(rows[ia]).toMatchObject({ phase: 'awaiting-approval', status: 'RUNNING', closeTime: null });
    expect(rows[ib]).toMatchObject({ phase: 'rejected', status: 'COMPLETED', workflowId: `release-v${b}` });

    const rejected = await h.run(['release', 'list', '--phase', 'rejected']);
    expect(rejected.code).toBe(0);
    const lines = rejected.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VERSION +PHASE +STATUS +STARTED +CLOSED +WORKFLOW ID$/);
    expect(
      lines.some((l) => l.startsWith(`${b} `) && l.includes('rejected') && l.includes('COMPLETED')),
    ).toBe(true);
    expect(lines.some((l) => l.startsWith(`${a} `))).toBe(false);
    expect(lines.slice(1).every((l) => /^\S+ +rejected +COMPLETED /.test(l))).toBe(true);
  });

  it('--limit bounds the list; a phase nobody is in says so', async () => {
    await started();
    await started();
    const one = await h.run(['release', 'list', '--json', '--limit', '1']);
    expect(JSON.parse(one.stdout)).toHaveLength(1);
    const none = await h.run(['release', 'list', '--phase', 'bake-inconclusive']);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('no releases in phase bake-inconclusive\n');
  });

  it.each([
    [['--phase', 'shipping'], "argument 'shipping' is invalid"],
    [['--limit', '0'], 'must be a whole number from 1 to 1000'],
  ])('%j is a usage error, exit 2', async (args, message) => {
    const r = await h.run(['release', 'list', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('connection', () => {
  it('connects per TEMPORAL_ADDRESS when no client is given', async () => {
    const version = await started();
    const r = await h.run(['release', 'status', version, '--json'], {
      client: undefined,
      env: { TEMPORAL_ADDRESS: h.server.address },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as ReleaseStatus).version).toBe(version);
  });

  it('a refused connection is one line naming the address, exit 1', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const r = await h.run(['release', 'list'], {
      client: undefined,
      env: { TEMPORAL_ADDRESS: `127.0.0.1:${port}` },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `aceh-release: cannot reach Temporal at 127.0.0.1:${port}: connection refused (start it with \`npm start\`, or set TEMPORAL_ADDRESS)\n`,
    );
  });

  it('invalid connection settings are a usage error, exit 2', async () => {
    const r = await h.run(['release', 'list'], { client: undefined, env: { TEMPORAL_ADDRESS: 'nowhere' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('aceh-release: invalid Temporal connection settings:');
    expect(r.stderr).toContain('must be host:port');
  });

  it('a namespace without the search attributes: the reason of the server and how to register them, exit 1', async () => {
    const bare = await DevServer.start({ port: 0 });
    try {
      const r = await h.run(['release', 'start', '1.2.0', '--commit', COMMIT, '--requested-by', 'alice'], {
        client: undefined,
        env: { TEMPORAL_ADDRESS: bare.address },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^aceh-release: Failed to start Workflow: search attribute ReleaseVersion is not defined/,
      );
      expect(r.stderr).toContain(
        '(register ReleaseVersion and ReleasePhase as Keyword search attributes once per namespace: ' +
          'temporal operator search-attribute create --name ReleaseVersion --type Keyword)\n',
      );
      expect(r.stderr.split('\n')).toHaveLength(2);
    } finally {
      await bare.stop();
    }
  });

  it('--help names the default address and the environment', async () => {
    const r = await h.run(['release', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`unset: ${DEFAULT_TEMPORAL_ADDRESS}, where \`npm start\` serves`);
    for (const command of ['start', 'approve', 'reject', 'cancel', 'qa', 'status', 'list']) {
      expect(r.stdout).toMatch(new RegExp(`\\n {2}${command}\\b`));
    }
  });
});
