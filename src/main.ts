/**
 * `npm start`: the orchestrator on the embedded default. Without TEMPORAL_ADDRESS it starts the embedded
 * dev server (real time) on 127.0.0.1:7233 (DEVSERVER_PORT to change) and runs the worker against it;
 * with TEMPORAL_ADDRESS it runs the worker against that cluster.
 */
import { DevServer } from './devserver/server';
import { TASK_QUEUE, describeConnection, readTemporalConnection } from './config/temporal-connection';
import { connectWorker, createWorker } from './worker';

async function main(): Promise<void> {
  const settings = readTemporalConnection(process.env);
  let devServer: DevServer | undefined;
  let address = settings.address;
  if (!address) {
    const port = Number(process.env['DEVSERVER_PORT'] ?? 7233);
    devServer = await DevServer.start({
      port,
      namespaces: [settings.namespace],
      searchAttributes: { ReleaseVersion: 'Keyword', ReleasePhase: 'Keyword' },
    });
    address = devServer.address;
    process.stderr.write(
      `aceh-release: embedded dev server on ${address} (namespace ${settings.namespace}); ` +
        `point the Temporal CLI at it with --address ${address}\n`,
    );
  } else {
    process.stderr.write(`aceh-release: ${describeConnection(settings)}\n`);
  }
  const connection = await connectWorker(settings, address);
  const worker = await createWorker(connection, settings.namespace);
  process.stderr.write(`aceh-release: worker polling task queue ${TASK_QUEUE}; Ctrl-C to stop\n`);
  const stop = () => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await worker.run();
  await connection.close();
  await devServer?.stop();
}

main().catch((err: unknown) => {
  process.stderr.write(`aceh-release: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
