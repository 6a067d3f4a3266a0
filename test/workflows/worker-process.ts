/**
 * A worker in its own process, for the test that kills one in the middle of a release. Reads its settings
 * (server address, namespace, platform configuration, credentials, local settings) from the JSON file named
 * by WORKER_SETTINGS, prints "ready" once polling, and runs until killed.
 */
import fs from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities, type WorkerLocalSettings } from '../../src/activities';
import type { CredentialSources } from '../../src/config/credential-ref';
import type { PlatformConfig } from '../../src/config/platform-config';
import { TASK_QUEUE } from '../../src/config/temporal-connection';
import { WORKFLOWS_PATH } from '../../src/worker';

interface Settings {
  address: string;
  namespace: string;
  config: PlatformConfig;
  credentials: CredentialSources;
  local: WorkerLocalSettings;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const settings = JSON.parse(fs.readFileSync(process.env['WORKER_SETTINGS'] ?? '', 'utf8')) as Settings;
  const connection = await NativeConnection.connect({ address: settings.address });
  const client = new Client({
    connection: await Connection.connect({ address: settings.address }),
    namespace: settings.namespace,
  });
  const worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: TASK_QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities({
      config: settings.config,
      credentials: settings.credentials,
      local: settings.local,
      log: () => undefined,
      temporal: { client, taskQueue: TASK_QUEUE },
    }),
  });
  const running = worker.run();
  process.stdout.write('ready\n');
  await running;
}

main().catch((err: unknown) => {
  process.stderr.write(`worker process: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
