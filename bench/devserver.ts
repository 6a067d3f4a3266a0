/**
 * Throughput and CPU benchmark of the embedded dev server (src/devserver) with the unmodified Temporal SDK
 * client and worker.  `npm run bench:devserver -- [options]`
 *
 * Processes:
 *   server  bin/temporal-devserver in dev-server (real-time) form, a child process on a free loopback port.
 *           CPU: utime+stime from /proc/<pid>/stat, exact, sampled before and after each scenario.
 *   worker  this process (NativeConnection + Worker; the Rust core threads are in-process).
 *           CPU: process.cpuUsage() deltas (all threads of this process).
 *   client  by default a third, forked process (bench/starter.ts) that starts the workflows and awaits
 *           their results, so the worker figure is the worker's alone. CPU: /proc/<pid>/stat.
 *           With --client inline the client runs here instead and is included in the worker figure.
 *
 * Scenarios, each run with N workflows started at once:
 *   one  workflows with one activity
 *   ten  workflows with ten sequential activities (--activities changes ten)
 * Activities are trivial (return their input). A warm-up of each selected scenario runs first, unmeasured.
 *
 * Goal: server CPU <= 25% of worker CPU for the same work.
 */
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import * as activities from './activities';
import { runBatch, type BatchRequest, type BatchResult } from './client-batch';
import { summarizeProfile, type TimeWindow } from './cpuprofile';

const ROOT = path.resolve(__dirname, '..');
const DEVSERVER = path.join(ROOT, 'bin', 'temporal-devserver');
const GOAL_RATIO = 0.25;

// --------------------------------------------------------------------------------------------------------
// Options
// --------------------------------------------------------------------------------------------------------

const HELP = `Usage: npm run bench:devserver -- [options]

  --workflows N       workflows per measured scenario, all started at once     (env BENCH_WORKFLOWS, 200)
  --scenario S        one | ten | all                                          (env BENCH_SCENARIO, all)
  --activities K      activities per workflow in the "ten" scenario            (env BENCH_ACTIVITIES, 10)
  --warmup N          workflows per scenario in the unmeasured warm-up, 0: none (env BENCH_WARMUP, 50)
  --repeat R          measured runs of each scenario                           (env BENCH_REPEAT, 1)
  --client MODE       process: the client is a third process (default); inline: in the worker's process
  --worker-compression C  gzip (the SDK default) | none: the worker's NativeConnection grpcCompression
  --profile           run the server under node --cpu-prof, print its hot spots in the measured runs
  --profile-dir DIR   where the .cpuprofile goes (default: a new directory under the OS temp dir)
  --timeout S         give up a scenario after S seconds                       (env BENCH_TIMEOUT, 300)
  --server-bin PATH   another server executable with the same command line, for A/B comparisons
                      (default bin/temporal-devserver)
  --server-node-flags F  extra node flags for the server process, e.g. "--max-semi-space-size=64"
  --strict            exit 1 when the server/worker CPU goal is missed
  --help`;

function options() {
  const { values } = parseArgs({
    options: {
      workflows: { type: 'string' },
      scenario: { type: 'string' },
      activities: { type: 'string' },
      warmup: { type: 'string' },
      repeat: { type: 'string' },
      client: { type: 'string' },
      'worker-compression': { type: 'string' },
      profile: { type: 'boolean' },
      'profile-dir': { type: 'string' },
      timeout: { type: 'string' },
      strict: { type: 'boolean' },
      'server-bin': { type: 'string' },
      'server-node-flags': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const int = (value: string | undefined, env: string, dflt: number, min: number): number => {
    const raw = value ?? process.env[env];
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(
        `${env.replace('BENCH_', '--').toLowerCase()} must be an integer >= ${min}, got ${raw}`,
      );
    return n;
  };
  const scenario = values.scenario ?? process.env['BENCH_SCENARIO'] ?? 'all';
  if (!['one', 'ten', 'all'].includes(scenario))
    throw new UsageError(`--scenario must be one, ten or all, got ${scenario}`);
  const client = values.client ?? process.env['BENCH_CLIENT'] ?? 'process';
  if (client !== 'process' && client !== 'inline')
    throw new UsageError(`--client must be process or inline, got ${client}`);
  const compression = values['worker-compression'] ?? process.env['BENCH_WORKER_COMPRESSION'] ?? 'gzip';
  const isCodec = (c: string): c is 'gzip' | 'none' => c === 'gzip' || c === 'none';
  if (!isCodec(compression))
    throw new UsageError(`--worker-compression must be gzip or none, got ${compression}`);
  return {
    workerCompression: compression,
    workflows: int(values.workflows, 'BENCH_WORKFLOWS', 200, 1),
    scenarios: scenario === 'all' ? (['one', 'ten'] as const) : ([scenario as 'one' | 'ten'] as const),
    activities: int(values.activities, 'BENCH_ACTIVITIES', 10, 1),
    warmup: int(values.warmup, 'BENCH_WARMUP', 50, 0),
    repeat: int(values.repeat, 'BENCH_REPEAT', 1, 1),
    clientMode: client,
    profile: values.profile ?? false,
    profileDir: values['profile-dir'],
    timeoutMs: int(values.timeout, 'BENCH_TIMEOUT', 300, 1) * 1000,
    strict: values.strict ?? false,
    serverNodeFlags: (values['server-node-flags'] ?? process.env['BENCH_SERVER_NODE_FLAGS'] ?? '')
      .split(/\s+/)
      .filter(Boolean),
    serverBin: path.resolve(values['server-bin'] ?? process.env['BENCH_SERVER_BIN'] ?? DEVSERVER),
  };
}
type Options = ReturnType<typeof options>;

class UsageError extends Error {}

// --------------------------------------------------------------------------------------------------------
// CPU accounting
// --------------------------------------------------------------------------------------------------------

let clockTicks = 100;
function readClockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch {
    // fall through: Linux's USER_HZ is 100
  }
  return 100;
}

/** utime + stime of a process (all its threads, not its children), in seconds. */
function procCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]); // field 14
  const stime = Number(rest[12]); // field 15
  return (utime + stime) / clockTicks;
}

function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

// --------------------------------------------------------------------------------------------------------
// Child processes (always reaped: see cleanupSync)
// --------------------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Last resort on every way out of this process: nothing may outlive the benchmark. */
function cleanupSync(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM (lets the server write its CPU profile), then SIGKILL after `graceMs`. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface ServerProcess {
  child: ChildProcess;
  pid: number;
  address: string;
  /** Rejects if the server exits before we stop it. */
  died: Promise<never>;
  stderrTail: () => string;
  stopping: boolean;
}

async function startServer(opts: Options, profileDir: string | undefined): Promise<ServerProcess> {
  const port = await freePort();
  const env = { ...process.env };
  // Whatever NODE_OPTIONS this process has (tsx's hooks) is not the server's business.
  delete env['NODE_OPTIONS'];
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
  const nodeFlags = [
    ...opts.serverNodeFlags,
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
  ];
  // `node bin/temporal-devserver` rather than the shebang: the pid is then the server's node process itself.
  const argv = [
    ...nodeFlags,
    opts.serverBin,
    'server',
    'start-dev',
    '--port',
    String(port),
    '--ip',
    '127.0.0.1',
    '--namespace',
    'default',
    '--headless',
  ];
  // The server does not exit when its parent dies (not even when its stdin pipe closes), and a SIGKILLed
  // benchmark runs no cleanup: where util-linux's setpriv exists, the kernel kills the server with us
  // (it execs node, so the pid stays the server's).
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => fs.existsSync(f));
  const [command, args] = setpriv
    ? [setpriv, ['--pdeathsig', 'SIGKILL', '--', process.execPath, ...argv]]
    : [process.execPath, argv];
  const child = track(
    spawn(command, args, {
      cwd: path.dirname(path.dirname(opts.serverBin)),
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  if (child.pid === undefined) throw new Error('could not spawn the dev server');
  let stderr = '';
  const server: ServerProcess = {
    child,
    pid: child.pid,
    address: `127.0.0.1:${port}`,
    died: undefined as never,
    stderrTail: () => stderr.slice(-4000),
    stopping: false,
  };
  server.died = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      if (!server.stopping)
        reject(
          new Error(
            `the dev server exited unexpectedly (code ${code}, signal ${signal})\n${server.stderrTail()}`,
          ),
        );
    });
  });
  server.died.catch(() => undefined); // observed where it matters
  child.stdout!.on('data', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the dev server did not listen within 60 s\n${server.stderrTail()}`)),
      60_000,
    );
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-64_000);
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    server.died.catch((err: unknown) => {
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
  return server;
}

// --------------------------------------------------------------------------------------------------------
// Client: forked starter process, or inline
// --------------------------------------------------------------------------------------------------------

interface BenchClient {
  /** pid whose CPU is the client's, or undefined when the client runs in this process. */
  pid: number | undefined;
  run(batch: BatchRequest): Promise<BatchResult>;
  close(): Promise<void>;
}

async function startClientProcess(address: string): Promise<BenchClient> {
  const child = track(
    fork(path.join(__dirname, 'starter.ts'), [address], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  if (child.pid === undefined) throw new Error('could not fork the client process');
  type Outbound =
    | { type: 'ready' }
    | { type: 'done'; id: number; result: BatchResult; cpuUs: number }
    | { type: 'error'; message: string };
  const pending = new Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let failure: Error | undefined;
  const failAll = (err: Error) => {
    failure ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (message: Outbound) => {
      if (message.type === 'ready') resolve();
      else if (message.type === 'done') {
        const p = pending.get(message.id);
        pending.delete(message.id);
        p?.resolve(message.result);
      } else {
        const err = new Error(`client process: ${message.message}`);
        reject(err);
        failAll(err);
      }
    });
    child.once('exit', (code, signal) => {
      const err = new Error(`the client process exited (code ${code}, signal ${signal})`);
      reject(err);
      failAll(err);
    });
  });
  await ready;
  return {
    pid: child.pid,
    run(batch) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ type: 'run', id, batch });
      });
    },
    async close() {
      if (child.connected) child.send({ type: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited(child);
      clearTimeout(timer);
    },
  };
}

async function startInlineClient(address: string): Promise<BenchClient> {
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  return { pid: undefined, run: (batch) => runBatch(client, batch), close: () => connection.close() };
}

// --------------------------------------------------------------------------------------------------------
// Scenarios
// --------------------------------------------------------------------------------------------------------

interface Measurement {
  scenario: string;
  run: number;
  workflows: number;
  activitiesPerWorkflow: number;
  wallS: number;
  serverCpuS: number;
  workerCpuS: number;
  clientCpuS: number | undefined;
  window: TimeWindow;
}

function batchFor(
  scenario: 'one' | 'ten',
  count: number,
  taskQueue: string,
  opts: Options,
  tag: string,
): BatchRequest {
  return scenario === 'one'
    ? { taskQueue, workflowType: 'oneActivityWorkflow', idPrefix: `bench-one-${tag}`, count, extraArgs: [] }
    : {
        taskQueue,
        workflowType: 'sequentialActivitiesWorkflow',
        idPrefix: `bench-ten-${tag}`,
        count,
        extraArgs: [opts.activities],
      };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function runScenario(
  server: ServerProcess,
  client: BenchClient,
  batch: BatchRequest,
  opts: Options,
  what: string,
): Promise<{
  result: BatchResult;
  wallS: number;
  serverCpuS: number;
  workerCpuS: number;
  clientCpuS: number | undefined;
  window: TimeWindow;
}> {
  const server0 = procCpuSeconds(server.pid);
  const client0 = client.pid !== undefined ? procCpuSeconds(client.pid) : undefined;
  const self0 = selfCpuSeconds();
  const t0 = process.hrtime.bigint();
  const result = await withTimeout(Promise.race([client.run(batch), server.died]), opts.timeoutMs, what);
  const t1 = process.hrtime.bigint();
  const self1 = selfCpuSeconds();
  const server1 = procCpuSeconds(server.pid);
  const client1 = client.pid !== undefined ? procCpuSeconds(client.pid) : undefined;
  if (result.failures.length > 0) {
    const sample = [...new Set(result.failures)].slice(0, 5).join('\n  ');
    throw new Error(
      `${what}: ${result.failures.length} of ${batch.count} workflows failed, e.g.\n  ${sample}`,
    );
  }
  return {
    result,
    wallS: Number(t1 - t0) / 1e9,
    serverCpuS: server1 - server0,
    workerCpuS: self1 - self0,
    clientCpuS: client0 !== undefined && client1 !== undefined ? client1 - client0 : undefined,
    window: { startUs: Number(t0 / 1000n), endUs: Number(t1 / 1000n) },
  };
}

// --------------------------------------------------------------------------------------------------------
// Report
// --------------------------------------------------------------------------------------------------------

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function report(measurements: Measurement[], opts: Options): { goalMet: boolean } {
  const f = (n: number, d = 2) => n.toFixed(d);
  const rows: string[][] = [
    [
      'scenario',
      'workflows',
      'activities',
      'wall s',
      'wf/s',
      'act/s',
      'server CPU s',
      'worker CPU s',
      'client CPU s',
      'server ms/wf',
      'server/worker',
      `goal <= ${GOAL_RATIO}`,
    ],
  ];
  let goalMet = true;
  for (const m of measurements) {
    const ratio = m.serverCpuS / m.workerCpuS;
    if (!(ratio <= GOAL_RATIO)) goalMet = false;
    const acts = m.workflows * m.activitiesPerWorkflow;
    rows.push([
      `${m.scenario === 'one' ? '(a) 1 activity' : `(b) ${m.activitiesPerWorkflow} activities`}${opts.repeat > 1 ? ` #${m.run}` : ''}`,
      String(m.workflows),
      String(acts),
      f(m.wallS),
      f(m.workflows / m.wallS, 1),
      f(acts / m.wallS, 1),
      f(m.serverCpuS),
      f(m.workerCpuS),
      m.clientCpuS === undefined ? 'in worker' : f(m.clientCpuS),
      f((1000 * m.serverCpuS) / m.workflows, 2),
      f(ratio, 3),
      ratio <= GOAL_RATIO ? 'met' : 'MISSED',
    ]);
  }
  const out: string[] = [];
  out.push('');
  out.push(table(rows));
  out.push('');
  out.push(
    opts.clientMode === 'process'
      ? 'server = bin/temporal-devserver child (/proc/<pid>/stat); worker = this process, worker only (process.cpuUsage, incl. Rust core threads);\n' +
          'client = separate starter process (/proc/<pid>/stat), not included in worker. Server CPU includes serving the client (start, result long-polls).'
      : 'server = bin/temporal-devserver child (/proc/<pid>/stat); worker = this process (process.cpuUsage, incl. Rust core threads)\n' +
          'AND the client (--client inline): the worker figure is worker + client, which flatters the server/worker ratio.',
  );

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const aps = (s: string) => {
    const ms = measurements.filter((m) => m.scenario === s);
    return ms.length ? mean(ms.map((m) => (m.workflows * m.activitiesPerWorkflow) / m.wallS)) : undefined;
  };
  const wps = (s: string) => {
    const ms = measurements.filter((m) => m.scenario === s);
    return ms.length ? mean(ms.map((m) => m.workflows / m.wallS)) : undefined;
  };
  const one = aps('one');
  const ten = aps('ten');
  if (one !== undefined && ten !== undefined) {
    out.push('');
    out.push(
      `Throughput: (a) ${f(wps('one')!, 1)} wf/s = ${f(one, 1)} activities/s;  (b) ${f(wps('ten')!, 1)} wf/s x ${opts.activities} = ${f(ten, 1)} activities/s;  ` +
        `ratio (b)/(a) in activities/s = ${f(ten / one, 2)}`,
    );
    out.push(
      `  per activity, (a) costs 2 workflow tasks + 1 activity task + a start and a result; (b) ~1.1 workflow tasks + 1 activity task:\n` +
        `  a ratio near 1-2 means per-task cost dominates; well below 1 means cost grows with history length (full history sent on every task).`,
    );
  }
  out.push('');
  out.push(
    `Goal (server CPU <= ${GOAL_RATIO * 100}% of worker CPU): ${goalMet ? 'met in every measured run' : 'MISSED in at least one measured run'}.`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
  return { goalMet };
}

// --------------------------------------------------------------------------------------------------------
// Main
// --------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = options();
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`bench:devserver: ${(err as Error).message}\n\n${HELP}\n`);
      return 2;
    }
    throw err;
  }
  clockTicks = readClockTicks();
  const profileDir = opts.profile
    ? (opts.profileDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'devserver-prof-')))
    : undefined;
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
  const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

  log(
    `node ${process.version}, ${os.cpus().length} CPUs, CLK_TCK ${clockTicks}; ${opts.workflows} workflows per scenario, ` +
      `scenarios ${opts.scenarios.join('+')}, ${opts.activities} activities in (b), warm-up ${opts.warmup}, repeat ${opts.repeat}, client ${opts.clientMode}, worker gRPC compression ${opts.workerCompression}` +
      (profileDir ? `, profiling the server into ${profileDir}` : ''),
  );

  Runtime.install({ logger: new DefaultLogger('WARN') });
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: path.join(__dirname, 'workflows.ts'),
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (m: string) => log(m),
    },
  });

  const server = await startServer(opts, profileDir);
  log(
    `server ${[...opts.serverNodeFlags, path.relative(process.cwd(), opts.serverBin) || opts.serverBin].join(' ')} pid ${server.pid} on ${server.address}`,
  );
  let client: BenchClient | undefined;
  let worker: Worker | undefined;
  let workerRun: Promise<void> | undefined;
  const measurements: Measurement[] = [];
  try {
    client =
      opts.clientMode === 'process'
        ? await startClientProcess(server.address)
        : await startInlineClient(server.address);
    if (client.pid !== undefined) log(`client pid ${client.pid}`);
    const connection = await NativeConnection.connect({
      address: server.address,
      grpcCompression: { codec: opts.workerCompression },
    });
    const taskQueue = `bench-${randomUUID().slice(0, 8)}`;
    // The SDK's defaults, spelled out so that the log says what ran.
    const tuning = { maxConcurrentWorkflowTaskExecutions: 40, maxConcurrentActivityTaskExecutions: 100 };
    worker = await Worker.create({
      connection,
      namespace: 'default',
      taskQueue,
      workflowBundle,
      activities,
      ...tuning,
    });
    log(
      `worker on ${taskQueue}: maxConcurrentWorkflowTaskExecutions ${tuning.maxConcurrentWorkflowTaskExecutions}, ` +
        `maxConcurrentActivityTaskExecutions ${tuning.maxConcurrentActivityTaskExecutions}, maxCachedWorkflows ${worker.options.maxCachedWorkflows}, ` +
        `other options SDK defaults`,
    );
    workerRun = worker.run();
    const workerDied = workerRun.then(
      () => Promise.reject(new Error('the worker stopped early')),
      (err: unknown) => Promise.reject(err instanceof Error ? err : new Error(String(err))),
    );
    workerDied.catch(() => undefined);
    const guard = <T>(p: Promise<T>) => Promise.race([p, workerDied]);

    if (opts.warmup > 0) {
      for (const s of opts.scenarios) {
        const r = await guard(
          runScenario(
            server,
            client,
            batchFor(s, opts.warmup, taskQueue, opts, 'warmup'),
            opts,
            `warm-up ${s}`,
          ),
        );
        log(`warm-up ${s}: ${opts.warmup} workflows in ${r.wallS.toFixed(2)} s`);
      }
    }
    for (let run = 1; run <= opts.repeat; run++) {
      for (const s of opts.scenarios) {
        const batch = batchFor(s, opts.workflows, taskQueue, opts, `run${run}`);
        const r = await guard(runScenario(server, client, batch, opts, `scenario ${s} run ${run}`));
        const m: Measurement = {
          scenario: s,
          run,
          workflows: opts.workflows,
          activitiesPerWorkflow: s === 'one' ? 1 : opts.activities,
          wallS: r.wallS,
          serverCpuS: r.serverCpuS,
          workerCpuS: r.workerCpuS,
          clientCpuS: r.clientCpuS,
          window: r.window,
        };
        measurements.push(m);
        log(
          `${s} #${run}: ${opts.workflows} workflows in ${r.wallS.toFixed(2)} s; CPU server ${r.serverCpuS.toFixed(2)} s, ` +
            `worker ${r.workerCpuS.toFixed(2)} s${r.clientCpuS !== undefined ? `, client ${r.clientCpuS.toFixed(2)} s` : ''}`,
        );
      }
    }
  } finally {
    if (worker && workerRun) {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await workerRun.catch((err: unknown) => log(`worker: ${String(err)}`));
    }
    await client?.close().catch(() => undefined);
    server.stopping = true;
    await stopChild(server.child, opts.profile ? 20_000 : 5_000);
  }

  const { goalMet } = report(measurements, opts);

  if (profileDir) {
    const files = fs
      .readdirSync(profileDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => path.join(profileDir, f))
      .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
    if (files.length === 0) {
      log(`no .cpuprofile was written to ${profileDir}`);
      return 1;
    }
    const windows = measurements.map((m) => `--window ${m.window.startUs}:${m.window.endUs}`).join(' ');
    process.stdout.write(
      `\nServer CPU profile (measured runs only; again: npx tsx bench/cpuprofile.ts ${files[0]} ${windows}):\n`,
    );
    process.stdout.write(
      `${
        summarizeProfile(
          files[0]!,
          measurements.map((m) => m.window),
        ).text
      }\n`,
    );
  }
  return opts.strict && !goalMet ? 1 : 0;
}

process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    cleanupSync();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `bench:devserver failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    cleanupSync();
    process.exit(1);
  },
);
