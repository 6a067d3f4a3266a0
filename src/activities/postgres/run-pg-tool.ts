/**
 * Runs `pg_dump` / `pg_restore` as a child process bound to the activity: its stdout streams to a
 * destination (or is collected), its stderr is kept (the tail) for the failure message, and a cancellation
 * kills it (SIGTERM, then SIGKILL after a grace period) and waits until it has exited, so no child outlives
 * the activity.
 */
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FailureType, failure } from '../../errors';
import { throwIfCancelled } from './postgres-connection';

export interface RunToolOptions {
  /** `pg_dump` or `pg_restore`, for messages. */
  tool: string;
  command: string;
  /** Never contains a secret: the password goes in `env`. */
  args: string[];
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Where stdout goes; when absent it is collected into `stdout` of the result. */
  stdout?: Writable;
  onStderrLine?: (line: string) => void;
  onSpawn?: (pid: number) => void;
  /** Time between SIGTERM and SIGKILL on cancellation. */
  killGraceMs?: number;
}

export interface ToolExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 16 KiB of stderr. */
  stderr: string;
  stdout: string;
}

const STDERR_TAIL = 16 * 1024;

/** Resolves when the child has exited (whatever its code); rejects with the activity's cancellation. */
export async function runPgTool(o: RunToolOptions): Promise<ToolExit> {
  throwIfCancelled(o.signal);
  const child = spawn(o.command, o.args, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let partialLine = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL);
    if (!o.onStderrLine) return;
    const lines = (partialLine + chunk).split('\n');
    partialLine = lines.pop() ?? '';
    for (const line of lines) o.onStderrLine(line);
  });
  let stdout = '';
  const stdoutDone: Promise<unknown> = o.stdout
    ? pipeline(child.stdout, o.stdout).then(
        () => undefined,
        (err: unknown) => err,
      )
    : new Promise<void>((resolve) => {
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => (stdout += chunk));
        child.stdout.on('close', resolve);
      });

  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), o.killGraceMs ?? 5000);
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('error', reject);
        child.once('spawn', () => {
          if (child.pid !== undefined) o.onSpawn?.(child.pid);
        });
        child.once('close', (code, signal) => resolve({ code, signal }));
      },
    ).catch((err: NodeJS.ErrnoException) => {
      throw failure(
        FailureType.InvalidInput,
        `${o.tool} cannot be started from ${o.command} (${err.code ?? err.message}); install the PostgreSQL ` +
          'client tools of the server version on the worker or fix the configured path',
        { details: { tool: o.tool, command: o.command, code: err.code } },
      );
    });
    const streamError = await stdoutDone;
    throwIfCancelled(o.signal);
    if (streamError && exit.code === 0) {
      throw failure(
        FailureType.OperationFailed,
        `${o.tool} output could not be written: ${(streamError as Error).message}`,
        { details: { tool: o.tool } },
      );
    }
    return { ...exit, stderr, stdout };
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
  }
}
