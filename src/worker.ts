/**
 * The aceh-release worker: polls the `aceh-release` task queue of the configured Temporal cluster. The only
 * place (with client.ts) that reads connection settings and builds clients.
 *
 *   TEMPORAL_ADDRESS=temporal.example:7233 TEMPORAL_NAMESPACE=aceh npx tsx src/worker.ts
 */
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { connectClient } from './client';
import { createActivities, type WorkerLocalSettings } from './activities';
import type { CredentialSources } from './config/credential-ref';
import { configFilePath, readPlatformConfig } from './config/load-platform-config';
import { formatIssue } from './config/validate-platform-config';
import type { PlatformConfig } from './config/platform-config';
import {
  TASK_QUEUE,
  describeConnection,
  readTemporalConnection,
  type TemporalConnectionSettings,
} from './config/temporal-connection';

export const WORKFLOWS_PATH = path.join(__dirname, 'workflows', 'index.ts');

/**
 * Worker tuning of every aceh-release worker. A cancellation reaches a running activity only with a
 * heartbeat's answer, and the SDK holds heartbeats back for up to 0.8 of the heartbeat timeout (capped at
 * 60 s): a cancelled release would keep waiting on a deployment or a migration for up to a minute. Five
 * seconds bounds that, for a few more heartbeat calls per long activity.
 */
export const WORKER_TUNING = {
  maxHeartbeatThrottleInterval: '5 seconds',
} as const;

/** True for `127.x.x.x:port`, `localhost:port` and `[::1]:port`: a server on this machine. */
export function isLoopbackAddress(address: string): boolean {
  const host = address
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The worker's connection. Requests are gzip-compressed (the SDK's default) except to a server on this
 * machine, such as the embedded dev server: there is no wire to save, and compressing every workflow-task
 * and activity completion costs CPU on both ends of the connection.
 */
export async function connectWorker(
  settings: TemporalConnectionSettings,
  address = settings.address,
): Promise<NativeConnection> {
  if (!address)
    throw new Error('TEMPORAL_ADDRESS is not set: say where the Temporal cluster is, or use `npm start`');
  return NativeConnection.connect({
    address,
    tls: settings.tls,
    apiKey: settings.apiKey,
    grpcCompression: { codec: isLoopbackAddress(address) ? 'none' : 'gzip' },
  });
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** What the worker runs with; each part has a default (see {@link createWorker}). */
export interface WorkerOptions {
  /** The platform configuration; read from the configuration file when absent. */
  config?: PlatformConfig;
  /** Where credential references are resolved; the process environment when absent. */
  credentials?: CredentialSources;
  /** Settings of this machine (git and snapshot directories, git remote, pg tools); defaults when absent. */
  local?: WorkerLocalSettings;
  /**
   * A client of the same cluster and namespace, for the environment lock and the rollback's release lookup
   * (a worker's native connection cannot serve a client). Without it those activities are not registered
   * and a release waits at its lock.
   */
  client?: Client;
}

/**
 * Builds the worker on `connection`; `run()` it, `shutdown()` it. Takes the platform configuration, or
 * {@link WorkerOptions}. Without a configuration it reads `ACEH_RELEASE_CONFIG` or
 * `config/aceh-commerce.yaml` (with `ACEH_RELEASE__…` overrides) and throws
 * `PlatformConfigError`/`ConfigFileError` when it is unusable. Credentials are not read here: each system
 * resolves its references (in `credentials`, the process environment by default) on the first call of one
 * of its activities.
 */
export async function createWorker(
  connection: NativeConnection,
  namespace: string,
  configOrOptions?: PlatformConfig | WorkerOptions,
): Promise<Worker> {
  const options = workerOptionsFrom(configOrOptions);
  let platform = options.config;
  if (!platform) {
    const loaded = readPlatformConfig({ file: configFilePath(undefined, process.env), env: process.env });
    for (const w of loaded.warnings) log(`aceh-release: configuration warning: ${formatIssue(w)}`);
    platform = loaded.config;
  }
  return Worker.create({
    connection,
    namespace,
    taskQueue: TASK_QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    ...WORKER_TUNING,
    activities: createActivities({
      config: platform,
      credentials: options.credentials ?? { env: process.env },
      ...(options.local ? { local: options.local } : {}),
      ...(options.client ? { temporal: { client: options.client, taskQueue: TASK_QUEUE } } : {}),
      log,
    }),
  });
}

/**
 * The second argument of {@link createWorker} as options: a platform configuration (it always has `version`
 * and `systems`, options never do) becomes `{ config }`; nothing becomes `{}`.
 */
export function workerOptionsFrom(
  configOrOptions: PlatformConfig | WorkerOptions | undefined,
): WorkerOptions {
  if (configOrOptions === undefined) return {};
  return 'version' in configOrOptions && 'systems' in configOrOptions
    ? { config: configOrOptions }
    : configOrOptions;
}

async function main(): Promise<void> {
  const settings = readTemporalConnection(process.env);
  const connection = await connectWorker(settings);
  process.stderr.write(`aceh-release worker: ${describeConnection(settings)}, task queue ${TASK_QUEUE}\n`);
  const client = await connectClient(settings);
  const worker = await createWorker(connection, settings.namespace, { client });
  await worker.run();
  await connection.close();
  await client.connection.close();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`aceh-release worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
