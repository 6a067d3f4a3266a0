/**
 * The launcher `bin/temporal-devserver` in both of its command lines, its command-line parser, `createLocal`
 * with search attributes, and the in-process `DevServer` API.
 */
import fs from 'node:fs';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import { InternalConnectionOptionsSymbol } from '@temporalio/client/lib/connection';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseCommandLine, UsageError, type ParsedCommandLine } from '../../src/devserver/cli';
import { DevServer } from '../../src/devserver/server';
import { DEVSERVER_EXECUTABLE, uid } from './helpers';

const NamespaceState = temporal.api.enums.v1.NamespaceState;
const IndexedValueType = temporal.api.enums.v1.IndexedValueType;

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether a listening socket can be opened on 127.0.0.1:port (so nobody holds it). */
async function canBind(port: number): Promise<boolean> {
  const server = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
  return ok;
}

/** Local TCP ports in LISTEN state, from /proc/net/tcp{,6}. */
function listeningPorts(): Set<number> {
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || cols[3] !== '0A') continue; // 0A = TCP_LISTEN
      ports.add(parseInt(local.slice(local.lastIndexOf(':') + 1), 16));
    }
  }
  return ports;
}

/** Pids whose parent is `pid`, from /proc/<pid>/stat. */
/** True while `pid` exists and is not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name (field 2) is in parentheses and may contain spaces; ppid is the 2nd field after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // The process went away meanwhile.
    }
  }
  return out;
}

interface Spawned {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function launch(args: string[]): Spawned {
  const child = spawn(DEVSERVER_EXECUTABLE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stderr: () => stderr, exited };
}

/** Runs the launcher to completion (for --help and bad arguments), with a bound on how long it may take. */
async function runToExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(DEVSERVER_EXECUTABLE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(guard);
  return { code, stdout, stderr };
}

/**
 * Polls GetSystemInfo the way the SDK core's launcher does (a fresh attempt every 100 ms) until it succeeds
 * or `deadline` passes; returns the response and the connection.
 */
async function waitForSystemInfo(
  address: string,
  deadline: number,
  spawned?: Spawned,
): Promise<{ connection: Connection; info: temporal.api.workflowservice.v1.GetSystemInfoResponse }> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (spawned && spawned.child.exitCode !== null) {
      throw new Error(`launcher exited with ${spawned.child.exitCode}: ${spawned.stderr()}`);
    }
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({
        address,
        connectTimeout: Math.max(100, Math.min(500, deadline - Date.now())),
      });
      const info = await connection.workflowService.getSystemInfo({});
      return { connection, info };
    } catch (err) {
      lastError = err;
      await connection?.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`no GetSystemInfo answer from ${address} in time: ${String(lastError)}`);
}

/** A client connection with the TestService wired, as TestWorkflowEnvironment.createTimeSkipping makes it. */
function connectWithTestService(address: string): Promise<Connection> {
  return Connection.connect({
    address,
    [InternalConnectionOptionsSymbol]: { supportsTestService: true },
  } as ConnectionOptions);
}

async function expectKilledAndPortFree(spawned: Spawned, port: number): Promise<void> {
  const pid = spawned.child.pid!;
  // The server itself starts no process. The TypeScript loader may run a compiler service while sources
  // are compiled for the first time; it ends with its parent. Nothing may outlive the server.
  const children = childrenOf(pid);
  spawned.child.kill('SIGKILL');
  const { signal } = await spawned.exited;
  expect(signal).toBe('SIGKILL');
  expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
  await vi.waitFor(() => expect(children.filter(isRunning)).toEqual([]), {
    timeout: 5_000,
    interval: 50,
  });
  expect(listeningPorts().has(port)).toBe(false);
  expect(await canBind(port)).toBe(true);
}

function expectOnlyRealCapabilities(info: temporal.api.workflowservice.v1.GetSystemInfoResponse): void {
  const caps = info.capabilities;
  expect(caps?.sdkMetadata).toBe(true);
  expect(caps?.nexus ?? false).toBe(false);
  expect(caps?.eagerWorkflowStart ?? false).toBe(false);
  expect(caps?.supportsSchedules ?? false).toBe(false);
  expect(caps?.buildIdBasedVersioning ?? false).toBe(false);
  expect(caps?.countGroupByExecutionStatus ?? false).toBe(false);
  expect(info.serverVersion).not.toBe('');
}

const START_DEADLINE_MS = 30_000;

describe('bin/temporal-devserver', () => {
  it('test-server form `<port>` answers GetSystemInfo, with time skipping, and dies cleanly on SIGKILL', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const spawned = launch([String(port)]);
    try {
      // How fast it starts is a speed figure, not something to assert: a loaded CI machine can take longer.
      const { connection, info } = await waitForSystemInfo(
        `127.0.0.1:${port}`,
        t0 + START_DEADLINE_MS,
        spawned,
      );
      expectOnlyRealCapabilities(info);
      // Time skipping is on: the TestService answers (it refuses in dev-server mode, see below).
      const testConnection = await connectWithTestService(`127.0.0.1:${port}`);
      const { time } = await testConnection.testService!.getCurrentTime({});
      expect(Math.abs(Number(time?.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
      expect(spawned.stderr()).toMatch(/time skipping/);
      await testConnection.close();
      await connection.close();
      await expectKilledAndPortFree(spawned, port);
    } finally {
      spawned.child.kill('SIGKILL');
    }
  });

  it('Temporal CLI form `server start-dev ...` answers GetSystemInfo, serves its namespace, and dies cleanly on SIGKILL', async () => {
    const port = await freePort();
    const namespace = uid('cli-ns');
    const t0 = Date.now();
    const spawned = launch([
      'server',
      'start-dev',
      '--port',
      String(port),
      '--namespace',
      namespace,
      '--ip',
      '127.0.0.1',
      '--headless',
      '--log-format',
      'pretty',
      '--log-level',
      'warn',
      '--dynamic-config-value',
      'frontend.enableUpdateWorkflowExecution=true',
      '--search-attribute',
      'CliKeyword=Keyword',
      '--search-attribute',
      'CliInt=Int',
    ]);
    try {
      // How fast it starts is a speed figure, not something to assert: a loaded CI machine can take longer.
      const { connection, info } = await waitForSystemInfo(
        `127.0.0.1:${port}`,
        t0 + START_DEADLINE_MS,
        spawned,
      );
      expectOnlyRealCapabilities(info);
      expect(spawned.stderr()).toMatch(/real time/);
      const testConnection = await connectWithTestService(`127.0.0.1:${port}`);
      await expect(testConnection.testService!.unlockTimeSkipping({})).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
      });
      await testConnection.close();
      for (const ns of [namespace, 'default']) {
        const described = await connection.workflowService.describeNamespace({ namespace: ns });
        expect(described.namespaceInfo?.state).toBe(NamespaceState.NAMESPACE_STATE_REGISTERED);
      }
      const attrs = await connection.operatorService.listSearchAttributes({ namespace });
      expect(attrs.customAttributes).toMatchObject({
        CliKeyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        CliInt: IndexedValueType.INDEXED_VALUE_TYPE_INT,
      });
      await connection.close();
      await expectKilledAndPortFree(spawned, port);
    } finally {
      spawned.child.kill('SIGKILL');
    }
  });

  it('--help exits 0 and prints the usage of both command lines', async () => {
    const runs = await Promise.all(
      [['--help'], ['-h'], ['server', 'start-dev', '--help']].map((args) => runToExit(args)),
    );
    for (const { code, stdout } of runs) {
      expect(code).toBe(0);
      expect(stdout).toMatch(/^Usage:/);
      expect(stdout).toContain('temporal-devserver <port>');
      expect(stdout).toContain('temporal-devserver server start-dev');
    }
  });

  it('bad arguments exit non-zero with a message (and the usage)', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown option "--bogus"/],
      [['7233', '--bogus'], /unknown test-server argument "--bogus"/],
      [['70000'], /port number between 0 and 65535/],
      [['server', 'stop'], /unknown command "server stop"/],
      [['server', 'start-dev', '--port', 'seven'], /--port must be a port number/],
      [['server', 'start-dev', '--namespace'], /--namespace needs a value/],
      [['server', 'start-dev', '--search-attribute', 'NoType'], /--search-attribute takes Name=Type/],
      [
        ['server', 'start-dev', '--port', '0', '--search-attribute', 'Foo=Bogus'],
        /unknown search attribute type "Bogus"/,
      ],
    ];
    const runs = await Promise.all(cases.map(([args]) => runToExit(args)));
    runs.forEach(({ code, stderr }, i) => {
      const [args, message] = cases[i]!;
      expect({ args, code, usage: stderr.includes('Usage:') }).toEqual({ args, code: 2, usage: true });
      expect(stderr).toMatch(message);
    });
  });

  it('a port that is already taken makes it exit non-zero, naming the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const runs = await Promise.all([
        runToExit([String(port)]),
        runToExit(['server', 'start-dev', '--port', String(port)]),
      ]);
      for (const { code, stderr } of runs) {
        expect(code).not.toBe(0);
        expect(code).not.toBeNull();
        expect(stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      }
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

describe('createLocal with search attributes', () => {
  let env: TestWorkflowEnvironment;
  const namespace = uid('local-ns');
  const keyword = defineSearchAttributeKey('LauncherKeyword', SearchAttributeType.KEYWORD);
  const int = defineSearchAttributeKey('LauncherInt', SearchAttributeType.INT);
  const datetime = defineSearchAttributeKey('LauncherDatetime', SearchAttributeType.DATETIME);

  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: DEVSERVER_EXECUTABLE },
        namespace,
        searchAttributes: [keyword, int, datetime],
      },
    });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  it('runs in real time, registers the namespace and the search attributes', async () => {
    expect(env.supportsTimeSkipping).toBe(false);
    expect(env.namespace).toBe(namespace);
    const described = await env.connection.workflowService.describeNamespace({ namespace });
    expect(described.namespaceInfo?.name).toBe(namespace);
    expect(described.namespaceInfo?.state).toBe(NamespaceState.NAMESPACE_STATE_REGISTERED);
    const attrs = await env.connection.operatorService.listSearchAttributes({ namespace });
    expect(attrs.customAttributes).toEqual({
      LauncherKeyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      LauncherInt: IndexedValueType.INDEXED_VALUE_TYPE_INT,
      LauncherDatetime: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    });
  });

  it('accepts typed search attributes on start and returns them from describe', async () => {
    const when = new Date('2024-05-06T07:08:09.000Z');
    const handle = await env.client.workflow.start('neverPolled', {
      taskQueue: uid('no-worker'),
      workflowId: uid('sa'),
      typedSearchAttributes: [
        { key: keyword, value: 'blue' },
        { key: int, value: 42 },
        { key: datetime, value: when },
      ],
    });
    const description = await handle.describe();
    expect(description.typedSearchAttributes.get(keyword)).toBe('blue');
    expect(description.typedSearchAttributes.get(int)).toBe(42);
    expect(description.typedSearchAttributes.get(datetime)?.toISOString()).toBe(when.toISOString());
    await handle.terminate('done');
  });

  it('rejects a start with a search attribute that was not registered', async () => {
    const err = await env.client.workflow
      .start('neverPolled', {
        taskQueue: uid('no-worker'),
        workflowId: uid('sa-bad'),
        typedSearchAttributes: [
          { key: defineSearchAttributeKey('NotRegistered', SearchAttributeType.KEYWORD), value: 'x' },
        ],
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(grpcCode(err)).toBe(grpc.status.INVALID_ARGUMENT);
    expect(String((err as Error).message) + String((err as { cause?: Error }).cause?.message)).toContain(
      'NotRegistered',
    );
  });
});

function grpcCode(err: unknown): number | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'number') return e.code;
  }
  return undefined;
}

describe('in-process DevServer', () => {
  it('starts on a free port, serves its namespaces and search attributes, and frees the port on stop()', async () => {
    const logs: string[] = [];
    const server = await DevServer.start({
      port: 0,
      namespaces: ['inproc'],
      searchAttributes: { InprocKeyword: 'Keyword', InprocBool: 'bool' },
      log: (m) => logs.push(m),
    });
    let stopped = false;
    try {
      expect(server.port).toBeGreaterThan(0);
      expect(server.address).toBe(`127.0.0.1:${server.port}`);
      expect(server.timeSkipping).toBe(false);
      expect(listeningPorts().has(server.port)).toBe(true);
      const connection = await Connection.connect({ address: server.address });
      const info = await connection.workflowService.getSystemInfo({});
      expectOnlyRealCapabilities(info);
      for (const namespace of ['inproc', 'default']) {
        const described = await connection.workflowService.describeNamespace({ namespace });
        expect(described.namespaceInfo?.state).toBe(NamespaceState.NAMESPACE_STATE_REGISTERED);
        const attrs = await connection.operatorService.listSearchAttributes({ namespace });
        expect(attrs.customAttributes).toEqual({
          InprocKeyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
          InprocBool: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
        });
      }
      const health = await connection.healthService.check({});
      expect(health.status).toBe(1); // grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING
      // A second server cannot take the same port.
      await expect(DevServer.start({ port: server.port, log: (m) => logs.push(m) })).rejects.toThrow(
        `cannot listen on 127.0.0.1:${server.port}`,
      );

      await server.stop();
      stopped = true;
      expect(await canBind(server.port)).toBe(true);
      expect(listeningPorts().has(server.port)).toBe(false);
      await connection.close();
      await expect(Connection.connect({ address: server.address, connectTimeout: 1_000 })).rejects.toThrow();
      await server.stop(); // idempotent
      expect(logs.filter((m) => m.includes('internal error'))).toEqual([]);
    } finally {
      if (!stopped) await server.stop();
    }
  });

  it('time-skipping mode starts locked, and unlocked with startUnlocked', async () => {
    const locked = await DevServer.start({ port: 0, timeSkipping: true });
    const unlocked = await DevServer.start({ port: 0, timeSkipping: true, startUnlocked: true });
    try {
      expect(locked.timeSkipping).toBe(true);
      expect(locked.clock.diagnostics().lockCount).toBe(1);
      expect(unlocked.clock.diagnostics().lockCount).toBe(0);
    } finally {
      await locked.stop();
      await unlocked.stop();
    }
  });

  it('refuses an unknown search attribute type', async () => {
    await expect(DevServer.start({ port: 0, searchAttributes: { X: 'Bogus' } })).rejects.toThrow(
      /unknown search attribute type "Bogus"/,
    );
  });
});

describe('parseCommandLine', () => {
  const createLocalArgv = (port: number, extra: string[] = []) => [
    'server',
    'start-dev',
    '--port',
    String(port),
    '--namespace',
    'default',
    '--ip',
    '127.0.0.1',
    '--log-format',
    'pretty',
    '--log-level',
    'warn',
    '--dynamic-config-value',
    'frontend.enableServerVersionCheck=false',
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    '--headless',
    ...extra,
  ];

  it.each<[string, string[], ParsedCommandLine['options'], number]>([
    ['test-server form', ['7233'], { port: 7233, timeSkipping: true, host: '127.0.0.1' }, 0],
    ['test-server form, port 0', ['0'], { port: 0, timeSkipping: true, host: '127.0.0.1' }, 0],
    [
      'test-server form, --enable-time-skipping',
      ['40000', '--enable-time-skipping'],
      { port: 40000, timeSkipping: true, host: '127.0.0.1', startUnlocked: true },
      0,
    ],
    [
      'createLocal command line',
      createLocalArgv(12345),
      { port: 12345, host: '127.0.0.1', timeSkipping: false, namespaces: ['default'], searchAttributes: {} },
      0,
    ],
    [
      'createLocal command line with search attributes and a db file',
      createLocalArgv(12346, [
        '--db-filename',
        '/tmp/x.db',
        '--search-attribute',
        'A=Keyword',
        '--search-attribute',
        'B=Int',
      ]),
      {
        port: 12346,
        host: '127.0.0.1',
        timeSkipping: false,
        namespaces: ['default'],
        searchAttributes: { A: 'Keyword', B: 'Int' },
      },
      1,
    ],
    [
      'eager activity dispatch turned off by its dynamic config value',
      createLocalArgv(12347, ['--dynamic-config-value', 'system.enableActivityEagerExecution=false']),
      {
        port: 12347,
        host: '127.0.0.1',
        timeSkipping: false,
        namespaces: ['default'],
        searchAttributes: {},
        eagerActivityExecution: false,
      },
      0,
    ],
    [
      'inline values, short flags, several namespaces',
      [
        'server',
        'start-dev',
        '--port=8000',
        '-n',
        'a',
        '--namespace=b',
        '--ip',
        '0.0.0.0',
        '--ui-port',
        '8233',
      ],
      { port: 8000, host: '0.0.0.0', timeSkipping: false, namespaces: ['a', 'b'], searchAttributes: {} },
      0,
    ],
    [
      'no arguments: dev server on 7233',
      [],
      { port: 7233, host: '127.0.0.1', timeSkipping: false, namespaces: [], searchAttributes: {} },
      0,
    ],
    [
      'flags without `server start-dev`, -p',
      ['-p', '9000', '--time-skipping'],
      { port: 9000, host: '127.0.0.1', timeSkipping: true, namespaces: [], searchAttributes: {} },
      0,
    ],
  ])('%s', (_name, argv, options, notices) => {
    const parsed = parseCommandLine(argv);
    expect(parsed.options).toEqual(options);
    expect(parsed.notices).toHaveLength(notices);
  });

  it.each<[string[], RegExp]>([
    [['65536'], /between 0 and 65535/],
    [['7233', 'extra'], /unknown test-server argument "extra"/],
    [['server'], /unknown command "server"/],
    [['server', 'start-dev', '--port'], /--port needs a value/],
    [['server', 'start-dev', '--port', '-1'], /--port must be a port number/],
    [['server', 'start-dev', '--port', '1.5'], /--port must be a port number/],
    [['server', 'start-dev', '--search-attribute', '=Keyword'], /--search-attribute takes Name=Type/],
    [['server', 'start-dev', '--frobnicate'], /unknown option "--frobnicate"/],
    [['start'], /unknown command "start"/],
    [['server', 'start-dev', '--search-attribute', 'A=Bogus'], /unknown search attribute type "Bogus"/],
    [['server', 'start-dev', '--dynamic-config-value', 'no-value'], /--dynamic-config-value takes Key=Value/],
    [
      ['server', 'start-dev', '--dynamic-config-value', 'system.enableActivityEagerExecution=maybe'],
      /takes true or false, got "maybe"/,
    ],
  ])('rejects %j', (argv, message) => {
    expect(() => parseCommandLine(argv)).toThrow(UsageError);
    expect(() => parseCommandLine(argv)).toThrow(message);
  });
});
