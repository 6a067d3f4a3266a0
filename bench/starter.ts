/**
 * Client child process of bench/devserver.ts (forked with an IPC channel). Connects to the server, then
 * runs each batch the parent sends and answers with the outcome and this process's own CPU use.
 *
 *   parent -> child: { type: 'run', id, batch: BatchRequest } | { type: 'exit' }
 *   child -> parent: { type: 'ready' } | { type: 'done', id, result: BatchResult, cpuUs } | { type: 'error', message }
 */
import { Client, Connection } from '@temporalio/client';
import { runBatch, type BatchRequest } from './client-batch';

type Inbound = { type: 'run'; id: number; batch: BatchRequest } | { type: 'exit' };

async function main(): Promise<void> {
  const address = process.argv[2];
  if (!address || !process.send)
    throw new Error('usage: forked by bench/devserver.ts with the server address');
  const send = (message: object) => process.send!(message);
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  process.on('message', (message: Inbound) => {
    if (message.type === 'exit') {
      void connection.close().finally(() => process.exit(0));
      return;
    }
    const cpu0 = process.cpuUsage();
    runBatch(client, message.batch).then(
      (result) => {
        const cpu = process.cpuUsage(cpu0);
        send({ type: 'done', id: message.id, result, cpuUs: cpu.user + cpu.system });
      },
      (err: unknown) =>
        send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    );
  });
  // The parent going away (even by SIGKILL) closes the IPC channel: do not outlive it.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  if (process.send) process.send({ type: 'error', message });
  else process.stderr.write(`${message}\n`);
  process.exit(1);
});
