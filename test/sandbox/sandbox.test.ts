/**
 * The local platform sandbox, through the worker's real activities: `createActivities` built from the
 * sandbox's configuration, credentials and local settings reaches every simulated system, the fakes see
 * only what their contracts allow, and `stop()` leaves nothing running.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createActivities } from '../../src/activities';
import { Systems } from '../../src/config/platform-config';
import { requirePostgresTools } from '../../src/sandbox/postgres-cluster';
import { SANDBOX_PREVIOUS_VERSION, startSandbox, type Sandbox } from '../../src/sandbox/sandbox';

// PostgreSQL 15 is required, as for every test of the database activities: missing, it fails here loudly.
requirePostgresTools();
let sandbox: Sandbox;
let dir: string;
/** Every system is configured in the sandbox, so every activity is there. */
let acts: Required<ReturnType<typeof createActivities>>;
const logLines: string[] = [];
let seq = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-sandbox-test-'));
  sandbox = await startSandbox({ dir, postgres: true });
  acts = createActivities({
    config: sandbox.config,
    credentials: sandbox.credentials,
    local: sandbox.local,
    log: (line) => logLines.push(line),
  }) as Required<ReturnType<typeof createActivities>>;
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function run<R>(fn: () => Promise<R>, info: Partial<Info> = {}): Promise<R> {
  const env = new MockActivityEnvironment(
    {
      activityId: `sandbox-${++seq}`,
      workflowExecution: { workflowId: 'release-v1.2.0', runId: `run-${seq}` },
      ...info,
    },
    { logger: new DefaultLogger('ERROR') },
  );
  return env.run<[], R, () => Promise<R>>(fn);
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  if (!(outcome.err instanceof ApplicationFailure)) throw outcome.err;
  return outcome.err;
}

describe('the sandbox configuration', () => {
  it('points every system at loopback, with a credential for every reference', () => {
    const systems = Systems.parse(sandbox.config.systems);
    const urls = [
      systems.coolify.url,
      systems.registry.url,
      systems.supabase.url,
      systems.objectStorage.endpoint,
      systems.proxmox.url,
      systems.loki.url,
      systems.prometheus.url,
      systems.grafana.url,
      systems.telegram.apiUrl,
      systems.cdn.apiUrl,
      systems.git.apiUrl,
      systems.ci.apiUrl,
    ];
    for (const url of urls) expect(new URL(url).hostname).toBe('127.0.0.1');
    expect(systems.postgres).toMatchObject({ host: '127.0.0.1', sslMode: 'disable' });
    const refs = JSON.stringify(sandbox.config.systems).match(/\{"(env|file)":"[^"]+"\}/g) ?? [];
    expect(refs.length).toBeGreaterThan(5);
    for (const ref of refs) {
      const parsed = JSON.parse(ref) as { env?: string };
      expect(parsed.env, `${ref} is an environment reference`).toBeDefined();
      expect(sandbox.credentials.env[parsed.env ?? '']).toMatch(/.{8,}/);
    }
    expect(sandbox.config.freezeWindows).toEqual([]);
    expect(sandbox.config.approval.approvers).toEqual(['tech-lead', 'qa-lead', 'ops-lead']);
    expect(fs.readdirSync(sandbox.config.database.migrations)).toEqual(['0001_init.sql']);
    expect(sandbox.local.gitRemote.startsWith(dir)).toBe(true);
  });

  it('runs the previous version everywhere, all production traffic on blue', async () => {
    expect(sandbox.applications.length).toBe(16);
    for (const app of sandbox.applications) {
      const coolify = sandbox.fakes.coolify.applications.get(app.uuid);
      expect(coolify?.runningTag).toBe(SANDBOX_PREVIOUS_VERSION);
      expect(coolify?.docker_registry_image_name).toBe(`${sandbox.fakes.registry.host}/aceh-commerce`);
      expect(coolify?.fqdn).toBe(sandbox.appUrl(app.uuid));
    }
    expect(sandbox.fakes.registry.tags()).toEqual([SANDBOX_PREVIOUS_VERSION]);
    for (const service of Object.keys(sandbox.config.services)) {
      expect(await sandbox.trafficWeights(service)).toEqual({ blue: 100, green: 0 });
      expect(await sandbox.liveColour(service)).toBe('blue');
    }
  });

  it('has a git remote with a couple of commits on main and the configured branches', async () => {
    expect(sandbox.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(sandbox.fakes.ci.resolveRef?.('main')).toBe(sandbox.commit);
    expect(sandbox.fakes.ci.resolveRef?.('staging')).toBe(sandbox.commit);
    expect(sandbox.fakes.ci.resolveRef?.('no-such-branch')).toBeUndefined();
    const commits = await run(() => acts.listCommitsBetween({ to: 'main' }));
    expect(commits.commits.map((c) => c.subject)).toEqual(['Add the health endpoint', 'Initial commit']);
  });

  it('stops what it had started when a part cannot start, and says what to install', async () => {
    const listening = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
    const before = listening();
    const path_ = process.env['PATH'];
    process.env['PATH'] = path.join(dir, 'no-binaries-here');
    try {
      await expect(startSandbox({ dir: path.join(dir, 'no-git'), postgres: false })).rejects.toThrow(
        /needs git on the PATH/,
      );
    } finally {
      process.env['PATH'] = path_;
    }
    // A closed server's handle is released on a later turn of the event loop.
    await vi.waitFor(() => expect(listening()).toBe(before), { timeout: 5_000, interval: 20 });
  });

  it('refuses an unknown application URL and fails to start where it cannot write', async () => {
    expect(() => sandbox.appUrl('no-such-app')).toThrow(/no application no-such-app/);
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    await expect(startSandbox({ dir: path.join(file, 'sub'), postgres: false })).rejects.toThrow(/ENOTDIR/);
  });
});

describe('the real activities against the sandbox', () => {
  it('resolves the digest of a pushed version, and misses an unpushed one', async () => {
    const digest = await sandbox.pushImage('1.2.0');
    const resolved = await run(() => acts.resolveImageDigest({ tag: '1.2.0' }));
    expect(resolved.digest).toBe(digest);
    expect(resolved.reference).toBe(`${sandbox.fakes.registry.host}/aceh-commerce@${digest}`);
    const missing = await failureOf(run(() => acts.resolveImageDigest({ tag: '9.9.9' })));
    expect(missing.type).toBe('NotFound');
  });

  it('deploys a production application, which then serves the new version', async () => {
    await sandbox.pushImage('1.2.0');
    const uuid = 'storefront-production-green';
    const deployed = await run(() => acts.deployApplication({ applicationUuid: uuid, imageTag: '1.2.0' }));
    const waited = await run(() => acts.waitForDeployment({ deploymentUuid: deployed.deploymentUuid }));
    expect(waited.status).toBe('finished');
    expect(sandbox.fakes.coolify.applications.get(uuid)?.runningTag).toBe('1.2.0');
    expect(sandbox.runningTags('production')).toMatchObject({
      'storefront/green': '1.2.0',
      'storefront/blue': SANDBOX_PREVIOUS_VERSION,
    });
    expect(Object.values(sandbox.stagingTags())).toEqual([
      SANDBOX_PREVIOUS_VERSION,
      SANDBOX_PREVIOUS_VERSION,
      SANDBOX_PREVIOUS_VERSION,
      SANDBOX_PREVIOUS_VERSION,
    ]);

    const health = `${sandbox.appUrl(uuid)}/api/health`;
    const checked = await run(() =>
      acts.checkEndpoints({ checks: [{ url: health, bodyIncludes: '"version":"1.2.0"' }] }),
    );
    expect(checked.passed).toBe(true);

    sandbox.apps.setHealth(uuid, 503);
    const unhealthy = await run(() => acts.checkEndpoints({ checks: [{ url: health }] }));
    expect(unhealthy.passed).toBe(false);
    expect(unhealthy.results[0]?.status).toBe(503);
    sandbox.apps.setHealth(uuid, 200);
  });

  it('switches traffic in the Traefik file', async () => {
    const change = await run(() => acts.switchTraffic({ service: 'api-gateway', to: 'green' }));
    expect(change.changed).toBe(true);
    expect(await sandbox.liveColour('api-gateway')).toBe('green');
    expect(await sandbox.trafficWeights('api-gateway')).toEqual({ blue: 0, green: 100 });
    const again = await run(() => acts.switchTraffic({ service: 'api-gateway', to: 'green' }));
    expect(again.changed).toBe(false);
  });

  it('samples a healthy error rate by default, and a scripted bad one', async () => {
    const healthy = await run(() =>
      acts.sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 20 }),
    );
    expect(healthy.decision).toBe('ok');
    expect(healthy.errorRate).toBeLessThan(sandbox.config.monitoring.maxErrorRate);
    sandbox.fakes.prometheus.setTraffic('storefront', { requests: 100, errors: 40 });
    try {
      const bad = await run(() =>
        acts.sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 20 }),
      );
      expect(bad.errorRate).toBeCloseTo(0.4, 12);
    } finally {
      sandbox.fakes.prometheus.clearTraffic('storefront');
    }
  });

  it('applies the migrations and appends audit records to PostgreSQL', async () => {
    const seeded = await sandbox.query<{ n: number }>('SELECT count(*)::int AS n FROM public.products');
    expect(seeded).toEqual([{ n: 3 }]);
    sandbox.addMigration('0002_product_stock.sql', 'ALTER TABLE public.products ADD COLUMN stock int;');
    expect(() => sandbox.addMigration('../escape.sql', 'SELECT 1')).toThrow(/plain file name/);
    const applied = await run(() => acts.applyMigrations({}));
    expect(applied.applied).toEqual(['0001_init.sql', '0002_product_stock.sql']);
    const columns = await sandbox.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'products' ORDER BY ordinal_position",
    );
    expect(columns.map((c) => c.column_name)).toContain('stock');
    const record = await run(() =>
      acts.appendAuditRecord({
        step: 'request',
        actor: 'alice',
        action: 'release-requested',
        version: '1.2.0',
      }),
    );
    expect(record).toMatchObject({ inserted: true });
    const rows = await sandbox.auditRows('release-v1.2.0');
    expect(rows.map((r) => [r.action, r.actor, r.version])).toEqual([
      ['release-requested', 'alice', '1.2.0'],
    ]);
    expect(await sandbox.auditRows('release-v0.0.1')).toEqual([]);
  });

  it('tags a commit on the git remote, also one added after start', async () => {
    const tagged = await run(() =>
      acts.createTag({
        name: 'v1.2.0-rc.1',
        commit: sandbox.commit,
        message: 'Release candidate 1.2.0-rc.1',
      }),
    );
    expect(tagged).toEqual({ name: 'v1.2.0-rc.1', commit: sandbox.commit, created: true });
    const next = await sandbox.addCommit('Fix the checkout button');
    expect(next).not.toBe(sandbox.commit);
    await run(() => acts.createTag({ name: 'v1.2.1', commit: next, message: 'Release 1.2.1' }));
    expect(await sandbox.tags()).toEqual(['v1.2.0-rc.1', 'v1.2.1']);
    expect(sandbox.fakes.ci.resolveRef?.('v1.2.1')).toBe(next);
    const moved = await failureOf(
      run(() => acts.createTag({ name: 'v1.2.1', commit: sandbox.commit, message: 'again' })),
    );
    expect(moved.type).toBe('PolicyViolation');
  });

  it('builds on the GitHub Actions fake: the run concludes success', async () => {
    const head = await sandbox.head();
    const started = await run(() => acts.triggerBuild({ ref: 'main', commit: head, version: '1.2.0' }));
    const done = await run(() => acts.waitForBuild({ runId: started.runId }));
    expect(done).toMatchObject({ conclusion: 'success', headSha: head });
    const smoke = await run(() => acts.triggerSmokeTest({ ref: 'main', commit: head, version: '1.2.0' }));
    expect((await run(() => acts.waitForSmokeTest({ runId: smoke.runId }))).conclusion).toBe('success');
  });

  it('announces, annotates, purges and scans logs', async () => {
    const sent = await run(() => acts.sendMessage({ text: 'Released v1.2.0 to production' }));
    expect(sent.chatId).toBe(Number(sandbox.config.systems.telegram.chatId));
    expect(sandbox.fakes.telegram.sent.map((m) => m.text)).toContain('Released v1.2.0 to production');
    await run(() => acts.annotate({ text: 'v1.2.0 released', tags: ['release'] }));
    expect(sandbox.fakes.grafana.annotations.map((a) => a.text)).toContain('v1.2.0 released');
    const purged = await run(() => acts.purgeCache({ everything: true }));
    expect(purged.mode).toBe('everything');
    const until = new Date().toISOString();
    const since = new Date(Date.now() - 600_000).toISOString();
    const scan = await run(() =>
      acts.countErrors({ selector: '{environment="production", service="storefront"}', since, until }),
    );
    expect(scan.errors).toBe(0);
    const snapshot = await run(() => acts.snapshotVm({ vmid: 201, snapname: 'v1_2_0' }));
    expect(snapshot).toBeDefined();
  });

  it('fails clearly for the systems it does not simulate', async () => {
    const err = await failureOf(run(() => acts.listObjects({ prefix: 'database/' })));
    expect(err.nonRetryable).toBe(false);
  });

  it('saw no contract violation in any fake', () => {
    expect(sandbox.violations()).toEqual({});
    expect(logLines.join('\n')).not.toMatch(/sandbox-[0-9a-f]{32}/);
  });
});

describe('stop', () => {
  it('stops every server and process, and can be called again', async () => {
    const other = await startSandbox({ dir: path.join(dir, 'second'), postgres: true });
    const urls = [
      other.fakes.coolify.baseUrl,
      other.fakes.prometheus.baseUrl,
      other.fakes.registry.baseUrl,
      other.apps.baseUrl,
    ];
    const pgPort = other.postgres?.port;
    const pgDir = other.postgres?.dir;
    await other.stop();
    await other.stop();
    for (const url of urls) await expect(fetch(url)).rejects.toThrow();
    if (pgPort !== undefined) {
      const refused = await new Promise<boolean>((resolve) => {
        const socket = net.connect(pgPort, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    }
    expect(processesMentioning([path.join(dir, 'second'), ...(pgDir ? [pgDir] : [])])).toEqual([]);
  }, 60_000);
});

/** Command lines of live processes that mention one of `needles`. */
function processesMentioning(needles: string[]): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (needles.some((n) => cmdline.includes(n))) found.push(`${pid}: ${cmdline}`);
  }
  return found;
}
