/**
 * How the `release` and `rollback` commands reach Temporal, and how whatever goes wrong on the way becomes
 * one line on stderr and an exit status instead of a stack trace.
 */
import net from 'node:net';
import { CommanderError } from 'commander';
import {
  NamespaceNotFoundError,
  QueryNotRegisteredError,
  ServiceError,
  WorkflowNotFoundError,
  isGrpcServiceError,
  type Client,
} from '@temporalio/client';
import { z } from 'zod';
import { connectClient } from '../client';
import { ConnectionConfigError, TASK_QUEUE, readTemporalConnection } from '../config/temporal-connection';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions';
import { CliFailure, EXIT_FAILED, EXIT_USAGE, type CliIo, type RunState } from './cli-io';

/** Where the CLI looks for Temporal without TEMPORAL_ADDRESS: the embedded dev server of `npm start`. */
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

/** How long a query may wait for a worker to answer before the CLI gives up. */
export const QUERY_TIMEOUT_MS = 10_000;

/** The environment section of `--help` of the commands that talk to Temporal. */
export const TEMPORAL_ENVIRONMENT_HELP = `
Temporal connection (the variables the Temporal CLI reads):
  TEMPORAL_ADDRESS     host:port of the frontend; unset: ${DEFAULT_TEMPORAL_ADDRESS}, where \`npm start\` serves
  TEMPORAL_NAMESPACE   namespace (default: default)
  TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA,
  TEMPORAL_TLS_SERVER_NAME   API key and TLS/mTLS settings`;

/** gRPC status codes (numeric, as @grpc/grpc-js reports them) the CLI explains. */
const GRPC = { INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, UNAVAILABLE: 14 } as const;

/** Rejects quickly when nothing listens at `address`, instead of waiting for the client's connect timeout. */
function probe(address: string): Promise<void> {
  const match = /^\[?([^\]]+)\]?:(\d+)$/.exec(address);
  if (!match) return Promise.resolve();
  const [, host, port] = match;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: host!, port: Number(port) });
    socket.setTimeout(3_000);
    const done = (err?: NodeJS.ErrnoException) => {
      socket.destroy();
      if (err && ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH'].includes(err.code ?? '')) {
        reject(new CliFailure(EXIT_FAILED, `cannot reach Temporal at ${address}: ${reachability(err.code)}`));
      } else {
        // Anything else (a slow handshake, a proxy): let the client try and report.
        resolve();
      }
    };
    socket.once('connect', () => done());
    socket.once('timeout', () => done());
    socket.once('error', done);
  });
}

const reachability = (code: string | undefined): string =>
  code === 'ECONNREFUSED'
    ? 'connection refused (start it with `npm start`, or set TEMPORAL_ADDRESS)'
    : code === 'ENOTFOUND'
      ? 'unknown host (check TEMPORAL_ADDRESS)'
      : 'host unreachable (check TEMPORAL_ADDRESS)';

/**
 * Runs `fn` with a Temporal client: the one in `io.client`, else a new connection per the TEMPORAL_*
 * variables of `io.env` (TEMPORAL_ADDRESS unset: {@link DEFAULT_TEMPORAL_ADDRESS}), closed afterwards.
 * Fails with a {@link CliFailure} when the settings are invalid (exit 2) or the server cannot be reached.
 */
export async function withTemporal<T>(io: CliIo, fn: (client: Client) => Promise<T>): Promise<T> {
  if (io.client) return await fn(io.client);
  let settings;
  try {
    settings = readTemporalConnection(io.env);
  } catch (err) {
    if (err instanceof ConnectionConfigError) throw new CliFailure(EXIT_USAGE, err.message);
    throw err;
  }
  const address = settings.address ?? DEFAULT_TEMPORAL_ADDRESS;
  await probe(address);
  let client: Client;
  try {
    client = await connectClient(settings, address);
  } catch (err) {
    throw new CliFailure(EXIT_FAILED, `cannot connect to Temporal at ${address}: ${messageOf(err)}`);
  }
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}

/** A query that gives up after {@link QUERY_TIMEOUT_MS} when no worker answers. */
export function withQueryDeadline<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  return client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, fn);
}

/** The message of `err` and of the causes under it, on one line. */
export function messageOf(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    if (isGrpcServiceError(current)) {
      parts.push(current.details || current.message);
      break;
    }
    if (current instanceof Error) {
      parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(typeof current === 'string' ? current : JSON.stringify(current));
      break;
    }
  }
  return [...new Set(parts.filter((p) => p.length > 0))].join(': ').replace(/\s*\n\s*/g, ' ');
}

const grpcCodeOf = (err: unknown): number | undefined => {
  const cause = err instanceof ServiceError ? err.cause : err;
  return isGrpcServiceError(cause) ? cause.code : undefined;
};

/**
 * Turns what an action threw into the line to print and the exit status. `what` names the workflow the
 * command was about (`release 1.2.0 (workflow release-v1.2.0)`), for the not-found message.
 */
export function explain(err: unknown, what?: string): CliFailure {
  if (err instanceof CliFailure) return err;
  if (err instanceof WorkflowNotFoundError && what) {
    return new CliFailure(EXIT_FAILED, `${what} does not exist`);
  }
  if (err instanceof NamespaceNotFoundError) {
    return new CliFailure(
      EXIT_FAILED,
      `namespace ${err.namespace} does not exist (check TEMPORAL_NAMESPACE)`,
    );
  }
  if (err instanceof QueryNotRegisteredError) {
    return new CliFailure(
      EXIT_FAILED,
      `the workflow does not answer the status query: is it an aceh-release workflow? (${err.message})`,
    );
  }
  const code = grpcCodeOf(err);
  if (code === GRPC.DEADLINE_EXCEEDED) {
    return new CliFailure(
      EXIT_FAILED,
      `no worker answered within ${QUERY_TIMEOUT_MS / 1000}s: is a worker polling task queue ${TASK_QUEUE} (\`npm start\`)?`,
    );
  }
  if (code === GRPC.INVALID_ARGUMENT && /search attribute/i.test(messageOf(err))) {
    const names = Object.values(SEARCH_ATTRIBUTES);
    return new CliFailure(
      EXIT_FAILED,
      `${messageOf(err)} (register ${names.join(' and ')} as Keyword search attributes once per namespace: ` +
        `temporal operator search-attribute create --name ${names[0]} --type Keyword)`,
    );
  }
  if (code === GRPC.UNAVAILABLE) {
    return new CliFailure(EXIT_FAILED, `Temporal is unavailable: ${messageOf(err)}`);
  }
  return new CliFailure(EXIT_FAILED, messageOf(err));
}

/** Prints the issues of a rejected command-line input and fails with exit status 2. */
export function invalidInput(heading: string, error: z.ZodError): CliFailure {
  return new CliFailure(EXIT_USAGE, `${heading}:\n${z.prettifyError(error)}`);
}

/**
 * Wraps an action: its return value becomes the exit status; a failure becomes `aceh-release: <message>`
 * on stderr and its exit status. Commander's own errors (usage, help) pass through to `main`.
 */
export function action<A extends unknown[]>(
  io: CliIo,
  state: RunState,
  fn: (...args: A) => Promise<number>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      state.exitCode = await fn(...args);
    } catch (err) {
      if (err instanceof CommanderError) throw err;
      const failure = explain(err);
      io.stderr(`aceh-release: ${failure.message}\n`);
      state.exitCode = failure.exitCode;
    }
  };
}
