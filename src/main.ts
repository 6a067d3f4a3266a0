/**
 * `npm start`: the orchestrator on the embedded default. Without TEMPORAL_ADDRESS it starts the embedded
 * dev server (real time) on 127.0.0.1:7233 (DEVSERVER_PORT to change) and the local sandbox of the platform
 * in `var/sandbox` (ACEH_RELEASE_SANDBOX=off to leave it out), and runs the worker against both; with
 * TEMPORAL_ADDRESS it runs the worker against that cluster and the configured systems.
 */
import path from 'node:path';
import { DevServer } from './devserver/server';
import { TASK_QUEUE, describeConnection, readTemporalConnection } from './config/temporal-connection';
import { sandboxEnabled, startLocalSandbox } from './sandbox/local-sandbox';
import { connectClient } from './client';
import { connectWorker, createWorker, type WorkerOptions } from './worker';

const say = (line: string): void => {
  process.stderr.write(`aceh-release: ${line}\n`);
};

async function main(): Promise<void> {
  const settings = readTemporalConnection(process.env);
  // Undone in reverse order when the worker stops, or when starting fails half-way.
  const cleanups: (() => Promise<void>)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: unknown) =>
        say(`while stopping: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
  };
  try {
    let address = settings.address;
    let workerOptions: WorkerOptions = {};
    if (!address) {
      const port = Number(process.env['DEVSERVER_PORT'] ?? 7233);
      const devServer = await DevServer.start({
        port,
        namespaces: [settings.namespace],
        searchAttributes: { ReleaseVersion: 'Keyword', ReleasePhase: 'Keyword' },
      });
      cleanups.push(() => devServer.stop());
      address = devServer.address;
      say(
        `embedded dev server on ${address} (namespace ${settings.namespace}); ` +
          `point the Temporal CLI at it with --address ${address}`,
      );
      if (sandboxEnabled(process.env)) {
        const { sandbox, where, hint } = await startLocalSandbox({
          dir: path.resolve('var', 'sandbox'),
          env: process.env,
          log: (line) => say(line),
        });
        cleanups.push(() => sandbox.stop());
        workerOptions = { config: sandbox.config, credentials: sandbox.credentials, local: sandbox.local };
        for (const line of where) say(`sandbox ${line}`);
        for (const line of hint) say(line);
      }
    } else {
      say(describeConnection(settings));
    }
    const connection = await connectWorker(settings, address);
    cleanups.push(() => connection.close());
    const client = await connectClient(settings, address);
    cleanups.push(() => client.connection.close());
    const worker = await createWorker(connection, settings.namespace, { ...workerOptions, client });
    say(`worker polling task queue ${TASK_QUEUE}; Ctrl-C to stop`);
    const stop = () => worker.shutdown();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await worker.run();
  } finally {
    await cleanUp();
  }
}

main().catch((err: unknown) => {
  say(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
