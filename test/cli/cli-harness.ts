/**
 * The embedded dev server with the release search attributes, a worker on task queue `aceh-release` running
 * the stand-in workflows, and `run(args)`: the CLI in-process against a client of that server, with its
 * output captured. One harness per test file.
 */
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { main, type CliIo } from '../../src/cli';
import { TASK_QUEUE } from '../../src/config/temporal-connection';
import { DevServer } from '../../src/devserver/server';
import { bundle } from '../devserver/helpers';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliHarness {
  server: DevServer;
  client: Client;
  /** Runs `aceh-release <args>` in-process; `io` replaces parts of the injected io (env, sleep, now). */
  run(args: string[], io?: Partial<CliIo>): Promise<CliRun>;
  close(): Promise<void>;
}

export async function startCliHarness(): Promise<CliHarness> {
  // The stand-in rollback fails on purpose in some tests: log only what would be a real problem.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const server = await DevServer.start({
    port: 0,
    namespaces: ['default'],
    searchAttributes: { ReleaseVersion: 'Keyword', ReleasePhase: 'Keyword' },
  });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: 'default' });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: 'default',
    taskQueue: TASK_QUEUE,
    workflowBundle: await bundle(path.join(__dirname, 'stand-in-workflows.ts')),
  });
  const running = worker.run();
  // Observed now so that a worker crash fails the tests through close(), not as an unhandled rejection.
  const outcome = running.then(
    () => undefined,
    (err: unknown) => err,
  );

  return {
    server,
    client,
    async run(args, io = {}) {
      const out = { stdout: '', stderr: '' };
      const code = await main(args, {
        stdout: (t) => (out.stdout += t),
        stderr: (t) => (out.stderr += t),
        env: {},
        client,
        ...io,
      });
      return { code, ...out };
    },
    async close() {
      worker.shutdown();
      const err = await outcome;
      await nativeConnection.close();
      await connection.close();
      await server.stop();
      if (err) throw err as Error;
    },
  };
}

let versions = 0;
/** A release version no other test of this run uses. */
export function uniqueVersion(): string {
  versions += 1;
  return `${randomInt(1, 1_000_000)}.${versions}.0`;
}

/** A valid 40-character commit SHA. */
export const COMMIT = '0123456789abcdef0123456789abcdef01234567';
