/**
 * Post-deployment smoke tests (M1): HTTP checks of the deployed endpoints and the project's smoke command
 * (`pnpm run test:smoke`). Both report what they saw; the workflow decides (promote, or roll back).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { z } from 'zod';
import { SecretRedactor } from '../../config/credential-ref';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, parseActivityInput } from '../activity-support';
import type { Fetch } from '../http/http-client';
import {
  CheckEndpointsInput,
  type CheckEndpointsResult,
  type EndpointCheckResult,
  RunCommandInput,
  type RunCommandProgress,
  type RunCommandResult,
} from './smoke-schemas';

export interface SmokeActivitiesOptions {
  /** Executables `runCommand` may start (argv[0], compared as given), e.g. `['pnpm']`. Nothing else runs. */
  allowedExecutables: string[];
  fetch?: Fetch;
  /** Environment for commands, merged over the worker's (secrets for the smoke suite go here). */
  commandEnv?: Record<string, string>;
  /** Values to cut out of captured output (e.g. the secrets in `commandEnv`). */
  secrets?: string[];
  /** Bytes kept from the end of stdout and of stderr; 64 KiB by default. */
  outputTailBytes?: number;
  /** Interval of `runCommand` heartbeats; 5 s by default. */
  heartbeatIntervalMs?: number;
  /** After SIGTERM, how long a command gets before SIGKILL; 5 s by default. */
  killGraceMs?: number;
  /** Checks run at the same time; 4 by default. */
  concurrency?: number;
  /** Body bytes read to look for `bodyIncludes`; 1 MiB by default. */
  maxBodyBytes?: number;
}

/** Keeps the last `limit` bytes written to it. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  total = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()?.length ?? 0;
    }
  }

  text(max = this.limit): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - max)).toString('utf8');
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'timed out';
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

/**
 * Builds the smoke activities.
 *
 * - `checkEndpoints` requests each URL and reports, per check, the status, the latency (until the body is
 *   read) and whether the marker text was found; `passed` is true when every check passed. Unreachable
 *   endpoints are results, not failures. Read-only, so retries are harmless.
 * - `runCommand` runs an allowed executable with an argv array (no shell) in `cwd`, keeps the tail of its
 *   output, heartbeats with the tail, and kills its whole process group on timeout (a result with
 *   `timedOut`) or cancellation. A non-zero exit is a result (`passed: false`), not a failure. A retry runs
 *   the command again, so the command must be safe to repeat (smoke suites only read).
 *
 * Failures: `InvalidInput` for malformed input, a missing `cwd` or an executable that cannot start;
 * `PolicyViolation` for an executable outside `allowedExecutables`.
 */
export function createSmokeActivities(options: SmokeActivitiesOptions) {
  const fetchImpl = options.fetch ?? fetch;
  const tailBytes = options.outputTailBytes ?? 64 * 1024;
  const heartbeatEvery = options.heartbeatIntervalMs ?? 5000;
  const killGraceMs = options.killGraceMs ?? 5000;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const redactor = new SecretRedactor();
  for (const s of [...(options.secrets ?? []), ...Object.values(options.commandEnv ?? {})]) redactor.add(s);

  async function checkOne(
    check: z.infer<typeof CheckEndpointsInput>['checks'][number],
  ): Promise<EndpointCheckResult> {
    const name = check.name ?? check.url;
    const signal = cancellationSignal();
    const timeout = AbortSignal.timeout(check.timeoutMs ?? 10_000);
    const started = performance.now();
    const base = { name, url: check.url };
    try {
      const res = await fetchImpl(check.url, {
        method: check.method,
        redirect: check.followRedirects ? 'follow' : 'manual',
        signal: AbortSignal.any([signal, timeout]),
        headers: { 'user-agent': 'aceh-release-smoke/1' },
      });
      let markerFound: boolean | null = null;
      if (res.body) {
        const parts: Buffer[] = [];
        let read = 0;
        // Leaving the loop early cancels the rest of the body.
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          parts.push(Buffer.from(chunk));
          read += chunk.length;
          if (read >= maxBodyBytes) break;
        }
        if (check.bodyIncludes !== undefined) {
          markerFound = Buffer.concat(parts)
            .subarray(0, maxBodyBytes)
            .toString('utf8')
            .includes(check.bodyIncludes);
        }
      } else if (check.bodyIncludes !== undefined) {
        markerFound = false;
      }
      const latencyMs = Math.round(performance.now() - started);
      const statusOk = res.status === check.expectStatus;
      const latencyOk = check.maxLatencyMs === undefined || latencyMs <= check.maxLatencyMs;
      const problems = [
        statusOk ? undefined : `status ${res.status}, expected ${check.expectStatus}`,
        latencyOk ? undefined : `took ${latencyMs} ms, more than ${check.maxLatencyMs} ms`,
        markerFound === false ? `body does not contain ${JSON.stringify(check.bodyIncludes)}` : undefined,
      ].filter((p): p is string => p !== undefined);
      return {
        ...base,
        ok: problems.length === 0,
        status: res.status,
        latencyMs,
        statusOk,
        latencyOk,
        markerFound,
        ...(problems.length ? { problem: problems.join('; ') } : {}),
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const latencyMs = Math.round(performance.now() - started);
      return {
        ...base,
        ok: false,
        status: null,
        latencyMs,
        statusOk: false,
        latencyOk: false,
        markerFound: check.bodyIncludes === undefined ? null : false,
        problem: `no answer (${describeNetworkError(err)})`,
      };
    }
  }

  async function checkEndpoints(input: CheckEndpointsInput): Promise<CheckEndpointsResult> {
    const { checks } = parseActivityInput(CheckEndpointsInput, input, 'checkEndpoints');
    const results: EndpointCheckResult[] = new Array<EndpointCheckResult>(checks.length);
    let next = 0;
    let done = 0;
    const worker = async () => {
      for (let i = next++; i < checks.length; i = next++) {
        const check = checks[i];
        if (!check) continue;
        results[i] = await checkOne(check);
        done += 1;
        heartbeat({ done, total: checks.length });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, checks.length) }, worker));
    return { passed: results.every((r) => r.ok), results };
  }

  async function runCommand(input: RunCommandInput): Promise<RunCommandResult> {
    const { command, cwd, timeoutMs, env } = parseActivityInput(RunCommandInput, input, 'runCommand');
    const [executable = '', ...args] = command;
    if (!options.allowedExecutables.includes(executable)) {
      throw failure(
        FailureType.PolicyViolation,
        `runCommand: "${executable}" is not an allowed executable (allowed: ${options.allowedExecutables.join(', ') || 'none'})`,
        { details: { executable, allowed: options.allowedExecutables } },
      );
    }
    if (!fs.statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) {
      throw failure(FailureType.InvalidInput, `runCommand: the working directory ${cwd} does not exist`, {
        details: { cwd },
      });
    }
    const signal = cancellationSignal();
    if (signal.aborted) throw signal.reason;
    const stdout = new Tail(tailBytes);
    const stderr = new Tail(tailBytes);
    const started = Date.now();
    const redact = (text: string) => redactor.redact(text);

    const outcome = await new Promise<{ exitCode: number | null; signal: string | null; timedOut: boolean }>(
      (resolve, reject) => {
        // Own process group: a timeout or a cancellation ends the command and everything it started.
        const child = spawn(executable, args, {
          cwd,
          env: { ...process.env, ...(options.commandEnv ?? {}), ...(env ?? {}) },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        });
        let timedOut = false;
        let killTimer: NodeJS.Timeout | undefined;
        const signalGroup = (sig: NodeJS.Signals) => {
          if (child.pid === undefined) return;
          try {
            process.kill(-child.pid, sig);
          } catch {
            // already gone
          }
        };
        const stop = () => {
          signalGroup('SIGTERM');
          killTimer ??= setTimeout(() => signalGroup('SIGKILL'), killGraceMs);
        };
        const onAbort = () => stop();
        signal.addEventListener('abort', onAbort, { once: true });
        const timer = setTimeout(() => {
          timedOut = true;
          stop();
        }, timeoutMs);
        const beat = setInterval(() => {
          heartbeat({
            pid: child.pid ?? -1,
            elapsedMs: Date.now() - started,
            stdoutTail: redact(stdout.text(1024)),
            stderrTail: redact(stderr.text(1024)),
          } satisfies RunCommandProgress);
        }, heartbeatEvery);
        const cleanup = () => {
          clearTimeout(timer);
          clearInterval(beat);
          if (killTimer) clearTimeout(killTimer);
          signal.removeEventListener('abort', onAbort);
        };
        child.stdout.on('data', (c: Buffer) => stdout.push(c));
        child.stderr.on('data', (c: Buffer) => stderr.push(c));
        child.on('error', (err: NodeJS.ErrnoException) => {
          cleanup();
          reject(
            failure(
              FailureType.InvalidInput,
              `runCommand: ${executable} could not start (${err.code ?? err.message})`,
              {
                details: { executable, code: err.code ?? null },
              },
            ),
          );
        });
        child.on('exit', () => {
          // The group may linger (a grandchild holding the pipes); make sure it ends too.
          signalGroup('SIGKILL');
        });
        child.on('close', (code, sig) => {
          cleanup();
          resolve({ exitCode: code, signal: sig, timedOut });
        });
        heartbeat({
          pid: child.pid ?? -1,
          elapsedMs: 0,
          stdoutTail: '',
          stderrTail: '',
        } satisfies RunCommandProgress);
      },
    );
    if (signal.aborted) throw signal.reason;
    return {
      command,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      timedOut: outcome.timedOut,
      passed: outcome.exitCode === 0 && !outcome.timedOut,
      durationMs: Date.now() - started,
      stdoutTail: redact(stdout.text()),
      stderrTail: redact(stderr.text()),
      stdoutBytes: stdout.total,
      stderrBytes: stderr.total,
    };
  }

  return { checkEndpoints, runCommand };
}

export type SmokeActivities = ReturnType<typeof createSmokeActivities>;
