/**
 * What every command group of `aceh-release` shares: where it writes, what it reads, its exit codes, and
 * the one way an action reports failure ({@link CliFailure}).
 */
import type { Client } from '@temporalio/client';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Where the CLI writes and what it reads, so that tests can run it in-process. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
  /**
   * A connected Temporal client to use instead of connecting per the TEMPORAL_* variables of `env`. The
   * CLI never closes a client it was given.
   */
  client?: Client;
  /** Waits between the queries of `--watch`; a real timer by default. */
  sleep?: (ms: number) => Promise<void>;
  /** The clock: rollback workflow ids and the duration of steps still running. */
  now?: () => Date;
}

/** Outcome of an action; commander itself only knows how to throw. */
export interface RunState {
  exitCode: number;
}

/**
 * An expected failure of a command: `message` goes to stderr as is (after `aceh-release: `), the command
 * exits with `exitCode`. Anything else an action throws is reduced to its message, never a stack trace.
 */
export class CliFailure extends Error {
  override name = 'CliFailure';
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export const nowOf = (io: CliIo): Date => (io.now ? io.now() : new Date());

export const sleepOf =
  (io: CliIo) =>
  (ms: number): Promise<void> =>
    io.sleep ? io.sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms));

/** Prints `value` as one indented JSON document. */
export const printJson = (io: CliIo, value: unknown): void =>
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
