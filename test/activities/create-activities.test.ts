import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { createActivities, type ActivitiesConfig } from '../../src/activities';
import { readPlatformConfig } from '../../src/config/load-platform-config';
import type { PlatformConfig } from '../../src/config/platform-config';

const EXAMPLE_FILE = path.join(__dirname, '..', '..', 'config', 'aceh-commerce.yaml');
const example = readPlatformConfig({ file: EXAMPLE_FILE }).config;

/** Fake secrets for every reference of the example; none may ever show up in a message. */
const FAKE_ENV: Record<string, string> = {
  COOLIFY_TOKEN: 'fake-coolify-s3cr3t-token',
  REGISTRY_PASSWORD: 'fake-registry-s3cr3t',
  SUPABASE_SERVICE_ROLE_KEY: 'fake-supabase-s3cr3t',
  MINIO_ACCESS_KEY_ID: 'fake-minio-access-key',
  MINIO_SECRET_ACCESS_KEY: 'fake-minio-s3cr3t-key',
  GRAFANA_TOKEN: 'fake-grafana-s3cr3t',
  TELEGRAM_BOT_TOKEN: '123456789:fake_telegram_s3cr3t',
  CLOUDFLARE_API_TOKEN: 'fake-cloudflare-s3cr3t',
  CLOUDFLARE_DNS_TOKEN: 'fake-cloudflare-dns-s3cr3t',
  GITHUB_TOKEN: 'fake-github-s3cr3t',
};
const FAKE_FILES: Record<string, string> = {
  '/run/secrets/postgres-password': 'fake-postgres-s3cr3t\n',
  '/run/secrets/proxmox-token': 'fake-proxmox-s3cr3t\n',
};
const ALL_SECRETS = [...Object.values(FAKE_ENV), ...Object.values(FAKE_FILES).map((v) => v.trim())];

const readFile = (file: string): string => {
  const value = FAKE_FILES[file];
  if (value === undefined) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
  return value;
};

const EXPECTED_NAMES = [
  // coolify
  'deployApplication',
  'waitForDeployment',
  'deployPreviousRevision',
  'getApplicationStatus',
  'cancelDeployment',
  // registry
  'resolveImageDigest',
  'checkDigestExists',
  // ci: build workflow, then the smoke test workflow (prefixed)
  'triggerBuild',
  'waitForBuild',
  'triggerSmokeTest',
  'waitForSmokeTest',
  // postgres
  'applyMigrations',
  'appendAuditRecord',
  'appendAuditRecords',
  'takeSnapshot',
  'restoreSnapshot',
  // objectStorage
  'uploadFile',
  'copyObject',
  'listObjects',
  'deleteObjects',
  // proxmox
  'snapshotVm',
  'convertToTemplate',
  'cloneVm',
  'deleteVm',
  'waitForTask',
  // git
  'createTag',
  'verifyTag',
  'listCommitsBetween',
  // smoke, qa
  'checkEndpoints',
  'runCommand',
  'summarizeQaReport',
  // prometheus, loki, grafana, telegram, cdn
  'queryInstant',
  'queryRange',
  'sampleErrorRate',
  'sampleLatency',
  'countErrors',
  'errorLines',
  'annotate',
  'sendMessage',
  'purgeCache',
  // traffic
  'switchTraffic',
  'setCanaryWeights',
  'mirrorTraffic',
  'stopMirroring',
  'getTrafficState',
  'restoreTrafficState',
  // the release itself (a whole platform configuration)
  'loadReleaseSettings',
  'checkSnapshotAge',
];

type Activity = (input: unknown) => Promise<unknown>;

function build(
  options: { env?: Record<string, string | undefined>; config?: ActivitiesConfig; log?: string[] } = {},
) {
  const log = options.log ?? [];
  const activities = createActivities({
    config: options.config ?? example,
    credentials: { env: options.env ?? { ...FAKE_ENV }, readFile },
    log: (line) => log.push(line),
  }) as Record<string, Activity | undefined>;
  return { activities, log };
}

/** Runs one activity with a real activity Context and returns its failure. */
async function failureOf(activity: Activity | undefined, input: unknown): Promise<ApplicationFailure> {
  expect(activity).toBeTypeOf('function');
  const env = new MockActivityEnvironment({ activityId: 'wiring-1' }, { logger: new DefaultLogger('ERROR') });
  try {
    const result = await env.run(activity as Activity, input);
    throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    const text = `${err.message} ${JSON.stringify(err.details ?? [])} ${String(err.cause)}`;
    for (const secret of ALL_SECRETS) expect(text).not.toContain(secret);
    return err;
  }
}

/** The example with its HTTP systems pointed at a closed loopback port. */
function closedPortConfig(): PlatformConfig {
  return {
    ...example,
    systems: {
      ...example.systems,
      coolify: { ...example.systems.coolify, url: 'http://127.0.0.1:1/api/v1' },
      telegram: { ...example.systems.telegram, apiUrl: 'http://127.0.0.1:1' },
    },
  };
}

describe('createActivities from the shipped example', () => {
  it('registers every expected activity, each a function, and no other', () => {
    const { activities, log } = build();
    expect(Object.keys(activities).sort()).toEqual([...EXPECTED_NAMES].sort());
    for (const name of EXPECTED_NAMES) expect(activities[name], name).toBeTypeOf('function');
    expect(log).toEqual([]);
  });

  it('builds with no credentials at all: nothing is resolved before an activity is called', () => {
    const { activities, log } = build({ env: {} });
    expect(Object.keys(activities).sort()).toEqual([...EXPECTED_NAMES].sort());
    expect(log).toEqual([]);
  });
});

describe('credentials are resolved on first call', () => {
  it('a missing environment variable is a non-retryable Unauthorized naming the reference', async () => {
    const env: Record<string, string | undefined> = { ...FAKE_ENV, TELEGRAM_BOT_TOKEN: undefined };
    const { activities } = build({ env });
    const f = await failureOf(activities['sendMessage'], { text: 'hello' });
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('credential environment variable TELEGRAM_BOT_TOKEN is not set');
  });

  it('an unreadable secret file is Unauthorized naming the file', async () => {
    const { activities } = build({ env: { ...FAKE_ENV } });
    const good = await failureOf(activities['deleteVm'], {});
    expect(good.type).not.toBe('Unauthorized');

    const config: PlatformConfig = {
      ...example,
      systems: {
        ...example.systems,
        proxmox: { ...example.systems.proxmox, tokenSecret: { file: '/nope' } },
      },
    };
    const f = await failureOf(build({ config }).activities['deleteVm'], {});
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('credential file /nope cannot be read (ENOENT)');
  });

  it('only the system whose credential is missing fails; others work', async () => {
    const env: Record<string, string | undefined> = { ...FAKE_ENV, COOLIFY_TOKEN: undefined };
    const { activities } = build({ env });
    expect((await failureOf(activities['getApplicationStatus'], { applicationUuid: 'abc' })).type).toBe(
      'Unauthorized',
    );
    const summary = await failureOf(activities['summarizeQaReport'], {});
    expect(summary.type).toBe('InvalidInput');
  });

  it('a failed resolution is not cached: once the variable is set the system is built, then reused', async () => {
    const env: Record<string, string | undefined> = { ...FAKE_ENV, TELEGRAM_BOT_TOKEN: undefined };
    const { activities, log } = build({ env, config: closedPortConfig() });
    expect((await failureOf(activities['sendMessage'], { text: 'hello' })).type).toBe('Unauthorized');
    expect(log).toEqual([]);

    env['TELEGRAM_BOT_TOKEN'] = FAKE_ENV['TELEGRAM_BOT_TOKEN'];
    expect((await failureOf(activities['sendMessage'], { text: 'hello' })).type).toBe('UpstreamUnavailable');
    expect((await failureOf(activities['sendMessage'], { text: 'again' })).type).toBe('UpstreamUnavailable');
    expect(log).toEqual(['aceh-release: telegram activities ready']);
  });

  it('keeps every credential value out of failures of built systems', async () => {
    const { activities } = build({ config: closedPortConfig() });
    const coolify = await failureOf(activities['getApplicationStatus'], { applicationUuid: 'abc' });
    expect(coolify.type).toBe('UpstreamUnavailable');
    const telegram = await failureOf(activities['sendMessage'], { text: 'hello' });
    expect(telegram.type).toBe('UpstreamUnavailable');
  });

  it('a credential the factory refuses is InvalidInput without its value', async () => {
    const env = { ...FAKE_ENV, TELEGRAM_BOT_TOKEN: 'fake-malformed-s3cr3t' };
    const { activities } = build({ env });
    const f = await failureOf(activities['sendMessage'], { text: 'hello' });
    expect(f.type).toBe('InvalidInput');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/^telegram activities cannot be built/);
    expect(f.message).not.toContain('fake-malformed-s3cr3t');
  });
});

describe('systems left out of the configuration', () => {
  it('register nothing', () => {
    const { telegram: _telegram, traffic: _traffic, ...systems } = example.systems;
    const { activities } = build({ config: { ...example, systems } });
    const names = Object.keys(activities);
    for (const gone of ['sendMessage', 'switchTraffic', 'getTrafficState', 'restoreTrafficState']) {
      expect(names).not.toContain(gone);
    }
    expect(names).toHaveLength(EXPECTED_NAMES.length - 7);
    expect(names).toContain('purgeCache');
  });

  it('registers the environment lock and the release lookup only with a Temporal client', () => {
    const without = Object.keys(build().activities);
    for (const name of ['requestEnvironmentLock', 'isWorkflowOpen', 'findReleasePlan'])
      expect(without).not.toContain(name);
    const client = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
    const withClient = createActivities({
      config: example,
      credentials: { env: FAKE_ENV },
      log: () => undefined,
      temporal: { client, taskQueue: 'aceh-release' },
    });
    for (const name of ['requestEnvironmentLock', 'isWorkflowOpen', 'findReleasePlan']) {
      expect(withClient[name as keyof typeof withClient], name).toBeTypeOf('function');
    }
  });

  it('a configured traffic provider that needs no credential works without any', async () => {
    const config: PlatformConfig = {
      ...example,
      systems: {
        ...example.systems,
        traffic: { provider: 'haproxy', socket: { host: '127.0.0.1', port: 1 } },
      },
    };
    const { activities } = build({ config, env: {} });
    const f = await failureOf(activities['getTrafficState'], { service: 'storefront' });
    expect(f.type).toBe('UpstreamUnavailable');
  });
});
