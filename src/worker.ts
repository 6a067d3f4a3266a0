/**
 * The aceh-release worker: polls the `aceh-release` task queue of the configured Temporal cluster. The only
 * place (with client.ts) that reads connection settings and builds clients.
 *
 *   TEMPORAL_ADDRESS=temporal.example:7233 TEMPORAL_NAMESPACE=aceh npx tsx src/worker.ts
 */
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './activities';
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

export async function connectWorker(
  settings: TemporalConnectionSettings,
  address = settings.address,
): Promise<NativeConnection> {
  if (!address)
    throw new Error('TEMPORAL_ADDRESS is not set: say where the Temporal cluster is, or use `npm start`');
  return NativeConnection.connect({ address, tls: settings.tls, apiKey: settings.apiKey });
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/**
 * Builds the worker on `connection`; `run()` it, `shutdown()` it. Without `config` it reads the platform
 * configuration from `ACEH_RELEASE_CONFIG` or `config/aceh-commerce.yaml` (with `ACEH_RELEASE__…`
 * overrides) and throws `PlatformConfigError`/`ConfigFileError` when it is unusable. Credentials are not
 * read here: each system resolves its references on the first call of one of its activities.
 */
export async function createWorker(
  connection: NativeConnection,
  namespace: string,
  config?: PlatformConfig,
): Promise<Worker> {
  let platform = config;
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
    activities: createActivities({ config: platform, credentials: { env: process.env }, log }),
  });
}

async function main(): Promise<void> {
  const settings = readTemporalConnection(process.env);
  const connection = await connectWorker(settings);
  process.stderr.write(`aceh-release worker: ${describeConnection(settings)}, task queue ${TASK_QUEUE}\n`);
  const worker = await createWorker(connection, settings.namespace);
  await worker.run();
  await connection.close();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`aceh-release worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
