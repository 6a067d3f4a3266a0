import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createSmokeActivities,
  type SmokeActivitiesOptions,
} from '../../../src/activities/smoke/smoke-activities';

/** An activity context whose logger stays quiet about the failures these tests provoke on purpose. */
const quietEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });

/** `env.run` typed with the activity's own input and result. */
function runIn<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run<A, R, typeof fn>(fn, ...args);
}

let server: http.Server;
let base: string;
let tmp: string;
const hanging: http.ServerResponse[] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smoke-'));
  server = http.createServer((req, res) => {
    switch (req.url) {
      case '/health':
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('status: ok; build=v1.2.0');
      case '/slow':
        return void setTimeout(() => res.end('slow but fine'), 300);
      case '/error':
        res.writeHead(500);
        return res.end('boom');
      case '/moved':
        res.writeHead(302, { location: '/health' });
        return res.end();
      case '/big':
        res.writeHead(200);
        res.write('x'.repeat(2 * 1024 * 1024));
        return res.end('MARKER-AT-THE-END');
      default:
        hanging.push(res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const NODE = process.execPath;

/** A port on 127.0.0.1 that nothing listens on (fetch refuses well-known ports such as 9). */
async function closedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function smoke(overrides: Partial<SmokeActivitiesOptions> = {}) {
  return createSmokeActivities({
    allowedExecutables: [NODE],
    heartbeatIntervalMs: 50,
    killGraceMs: 300,
    ...overrides,
  });
}

function envWithBeats() {
  const env = quietEnv();
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  return { env, beats };
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

describe('checkEndpoints', () => {
  it('passes when status, latency and marker are as expected, and heartbeats per check', async () => {
    const { env, beats } = envWithBeats();
    const out = await runIn(env, smoke().checkEndpoints, {
      checks: [
        { name: 'health', url: `${base}/health`, bodyIncludes: 'build=v1.2.0', maxLatencyMs: 5000 },
        { url: `${base}/moved`, bodyIncludes: 'status: ok' },
        { url: `${base}/moved`, followRedirects: false, expectStatus: 302 },
        { url: `${base}/health`, method: 'HEAD' },
      ],
    });
    expect(out.passed).toBe(true);
    expect(out.results[0]).toMatchObject({
      name: 'health',
      ok: true,
      status: 200,
      statusOk: true,
      latencyOk: true,
      markerFound: true,
    });
    expect(out.results[0]?.problem).toBeUndefined();
    expect(out.results[1]).toMatchObject({ name: `${base}/moved`, status: 200, markerFound: true });
    expect(out.results[2]).toMatchObject({ status: 302, ok: true });
    expect(beats).toHaveLength(4);
    expect(beats.at(-1)).toEqual({ done: 4, total: 4 });
  });

  it('reports each kind of failed check without failing the activity', async () => {
    const port = await closedPort();
    const out = await runIn(quietEnv(), smoke().checkEndpoints, {
      checks: [
        { url: `${base}/error` },
        { url: `${base}/health`, bodyIncludes: 'build=v9.9.9' },
        { url: `${base}/slow`, maxLatencyMs: 50 },
        { url: `http://127.0.0.1:${port}/health` },
        { url: `${base}/hang`, timeoutMs: 200 },
        { url: `${base}/big`, bodyIncludes: 'MARKER-AT-THE-END' },
      ],
    });
    expect(out.passed).toBe(false);
    const [error, marker, slow, closed, hang, big] = out.results;
    expect(error).toMatchObject({
      ok: false,
      status: 500,
      statusOk: false,
      problem: 'status 500, expected 200',
    });
    expect(marker).toMatchObject({ ok: false, markerFound: false });
    expect(marker?.problem).toContain('build=v9.9.9');
    expect(slow).toMatchObject({ ok: false, status: 200, latencyOk: false });
    expect(slow!.latencyMs).toBeGreaterThanOrEqual(250);
    expect(closed).toMatchObject({ ok: false, status: null, problem: 'no answer (ECONNREFUSED)' });
    expect(hang).toMatchObject({ ok: false, status: null, problem: 'no answer (timed out)' });
    // Only the first megabyte is searched.
    expect(big).toMatchObject({ ok: false, status: 200, markerFound: false });
  });

  it('rejects a check that is not an http(s) URL', async () => {
    const f = await failureOf(
      runIn(quietEnv(), smoke().checkEndpoints, { checks: [{ url: 'ftp://example.com/x' }] }),
    );
    expect(f.type).toBe('InvalidInput');
    expect((await failureOf(runIn(quietEnv(), smoke().checkEndpoints, { checks: [] }))).type).toBe(
      'InvalidInput',
    );
  });

  it('stops when cancelled', async () => {
    const before = hanging.length;
    const env = quietEnv();
    const running = runIn(env, smoke().checkEndpoints, {
      checks: [{ url: `${base}/hang-forever`, timeoutMs: 60_000 }],
    });
    await vi.waitFor(() => expect(hanging.length).toBeGreaterThan(before));
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
  });
});

describe('runCommand', () => {
  it('runs the command without a shell and captures exit code and output', async () => {
    const out = await runIn(quietEnv(), smoke().runCommand, {
      command: [
        NODE,
        '-e',
        'console.log("smoke ok:", process.argv[1]); console.error("a warning")',
        '$HOME; echo hi',
      ],
      cwd: tmp,
      timeoutMs: 20_000,
    });
    expect(out).toMatchObject({ exitCode: 0, signal: null, timedOut: false, passed: true });
    expect(out.stdoutTail).toBe('smoke ok: $HOME; echo hi\n');
    expect(out.stderrTail).toBe('a warning\n');
  });

  it('reports a failing suite as a result, with its exit code', async () => {
    const out = await runIn(quietEnv(), smoke().runCommand, {
      command: [NODE, '-e', 'console.error("2 tests failed"); process.exit(3)'],
      cwd: tmp,
      timeoutMs: 20_000,
      env: { SMOKE_TARGET: 'staging' },
    });
    expect(out).toMatchObject({ exitCode: 3, passed: false, stderrTail: '2 tests failed\n' });
  });

  it('keeps only the tail of large output and redacts secrets', async () => {
    const out = await runIn(
      quietEnv(),
      smoke({ outputTailBytes: 1024, commandEnv: { SMOKE_TOKEN: 'tok-5e3c1d2a9b' } }).runCommand,
      {
        command: [
          NODE,
          '-e',
          'process.stdout.write("x".repeat(200000)); console.log("token", process.env.SMOKE_TOKEN)',
        ],
        cwd: tmp,
        timeoutMs: 20_000,
      },
    );
    expect(out.stdoutBytes).toBeGreaterThan(200_000);
    expect(out.stdoutTail.length).toBeLessThanOrEqual(1024 + 64);
    expect(out.stdoutTail).toContain('token [redacted]');
    expect(out.stdoutTail).not.toContain('tok-5e3c1d2a9b');
  });

  it('heartbeats with the output tail while running', async () => {
    const { env, beats } = envWithBeats();
    await runIn(env, smoke().runCommand, {
      command: [NODE, '-e', 'console.log("suite started"); setTimeout(() => {}, 400)'],
      cwd: tmp,
      timeoutMs: 20_000,
    });
    expect(beats.some((b) => (b as { stdoutTail: string }).stdoutTail.includes('suite started'))).toBe(true);
    expect((beats[0] as { pid: number }).pid).toBeGreaterThan(0);
  });

  it('kills the command and what it started when the time is up, also when SIGTERM is ignored', async () => {
    const script = `
      const { spawn } = require('node:child_process');
      spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'inherit' });
      process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
      console.log('started');
      setInterval(() => {}, 1000);`;
    const started = Date.now();
    const out = await runIn(quietEnv(), smoke().runCommand, {
      command: [NODE, '-e', script],
      cwd: tmp,
      timeoutMs: 500,
    });
    expect(out).toMatchObject({ timedOut: true, passed: false, exitCode: null, signal: 'SIGKILL' });
    expect(out.stdoutTail).toContain('ignoring SIGTERM');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('kills the command when the activity is cancelled', async () => {
    const { env, beats } = envWithBeats();
    const running = runIn(env, smoke().runCommand, {
      command: [NODE, '-e', 'setInterval(() => {}, 1000)'],
      cwd: tmp,
      timeoutMs: 60_000,
    });
    await vi.waitFor(() => expect(beats.length).toBeGreaterThan(0));
    const pid = (beats[0] as { pid: number }).pid;
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('refuses executables that are not allowed, a missing cwd and a command that cannot start', async () => {
    const denied = await failureOf(
      runIn(quietEnv(), smoke().runCommand, { command: ['bash', '-c', 'id'], cwd: tmp, timeoutMs: 1000 }),
    );
    expect(denied.type).toBe('PolicyViolation');
    const noCwd = await failureOf(
      runIn(quietEnv(), smoke().runCommand, {
        command: [NODE, '-v'],
        cwd: path.join(tmp, 'missing'),
        timeoutMs: 1000,
      }),
    );
    expect(noCwd.type).toBe('InvalidInput');
    const missing = await failureOf(
      runIn(quietEnv(), smoke({ allowedExecutables: ['pnpm-not-installed-here'] }).runCommand, {
        command: ['pnpm-not-installed-here', 'run', 'test:smoke'],
        cwd: tmp,
        timeoutMs: 1000,
      }),
    );
    expect(missing.type).toBe('InvalidInput');
    expect(missing.message).toContain('ENOENT');
  });
});
