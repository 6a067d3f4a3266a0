/**
 * Visibility: `client.workflow.list({ query })` and `client.workflow.count(query)` over system and custom
 * search attributes. Real time (createRealTimeEnv); runs unchanged against a real server when TEMPORAL_ADDRESS
 * is set: every query is scoped to this run's workflow ids, and results are polled for, since a real server's
 * visibility is eventually consistent.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { WorkflowExecutionInfo, WorkflowHandle } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bundle, createRealTimeEnv, externalAddress, uid } from './helpers';
import { quickWorkflow, releaseSignal, waitForRelease } from './workflows/time';

const colour = defineSearchAttributeKey('DevVisColour', SearchAttributeType.KEYWORD);
const rank = defineSearchAttributeKey('DevVisRank', SearchAttributeType.INT);

let env: TestWorkflowEnvironment;
let worker: Worker;
let workerRun: Promise<void>;

/** Unique per run: every query below is scoped with it, so earlier runs on a real server do not interfere. */
const P = uid('vis');
const scope = `WorkflowId STARTS_WITH '${P}-'`;
const taskQueueA = `${P}-tq-a`;
/** No worker polls this one: its workflows stay Running. */
const taskQueueB = `${P}-tq-b`;
const handles: WorkflowHandle[] = [];
/** Between the start times of the first three runs and the last three. */
let marker: Date;
let testStart: Date;

const id = (n: number) => `${P}-${n}`;

async function ensureSearchAttributes(): Promise<void> {
  // The embedded server got them on its command line; a real server may need them added (idempotent).
  if (!externalAddress) return;
  try {
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace,
      searchAttributes: {
        [colour.name]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        [rank.name]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
      },
    });
  } catch (err) {
    if ((err as { code?: number }).code !== grpc.status.ALREADY_EXISTS) throw err;
  }
}

beforeAll(async () => {
  env = await createRealTimeEnv([colour, rank]);
  await ensureSearchAttributes();
  worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace,
    taskQueue: taskQueueA,
    workflowBundle: await bundle(path.join(__dirname, 'workflows/time.ts')),
  });
  workerRun = worker.run();

  testStart = new Date(Date.now() - 1);
  const start = async (
    n: number,
    workflow: typeof quickWorkflow | typeof waitForRelease,
    taskQueue: string,
    attrs?: { colour: string; rank: number },
  ) => {
    const handle = await env.client.workflow.start(workflow.name, {
      workflowId: id(n),
      taskQueue,
      args: workflow === quickWorkflow ? [`v${n}`] : [],
      typedSearchAttributes: attrs
        ? [
            { key: colour, value: attrs.colour },
            { key: rank, value: attrs.rank },
          ]
        : [],
    });
    handles[n] = handle;
    return handle;
  };
  //  n | type           | task queue | colour | rank | ends up
  //  0 | quickWorkflow  | A          | red    | 10   | Completed
  //  1 | quickWorkflow  | A          | green  | 20   | Completed
  //  2 | waitForRelease | A          | blue   | 30   | Running
  //  3 | waitForRelease | A          | red    | 40   | Running
  //  4 | waitForRelease | B          | green  | 50   | Terminated
  //  5 | waitForRelease | B          | -      | -    | Running (nobody polls B)
  await start(0, quickWorkflow, taskQueueA, { colour: 'red', rank: 10 });
  await start(1, quickWorkflow, taskQueueA, { colour: 'green', rank: 20 });
  await start(2, waitForRelease, taskQueueA, { colour: 'blue', rank: 30 });
  const starts = await Promise.all(
    [0, 1, 2].map(async (n) => (await handles[n]!.describe()).startTime.getTime()),
  );
  marker = new Date(Math.max(...starts) + 1);
  // A bounded wait for the wall clock to pass the marker (at most a couple of ms).
  while (Date.now() <= marker.getTime() + 1) await new Promise((resolve) => setImmediate(resolve));
  await start(3, waitForRelease, taskQueueA, { colour: 'red', rank: 40 });
  await start(4, waitForRelease, taskQueueB, { colour: 'green', rank: 50 });
  await start(5, waitForRelease, taskQueueB);
  await handles[4]!.terminate('visibility test');
  expect(await handles[0]!.result()).toBe('v0');
  expect(await handles[1]!.result()).toBe('v1');
});

afterAll(async () => {
  await Promise.allSettled([
    handles[2]?.signal(releaseSignal, 'done'),
    handles[3]?.signal(releaseSignal, 'done'),
    handles[5]?.terminate('visibility test done'),
  ]);
  worker?.shutdown();
  await workerRun?.catch(() => undefined);
  await env?.teardown();
});

async function listAll(query: string, pageSize?: number): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const info of env.client.workflow.list({ query, pageSize })) out.push(info);
  return out;
}

/** Polls (bounded) until the listed ids, in the server's order, equal `expected`. */
async function expectListed(
  query: string,
  expected: string[],
  options: { ordered?: boolean; pageSize?: number } = {},
) {
  await vi.waitFor(
    async () => {
      const ids = (await listAll(query, options.pageSize)).map((info) => info.workflowId);
      expect(options.ordered ? ids : [...ids].sort()).toEqual(
        options.ordered ? expected : [...expected].sort(),
      );
    },
    { timeout: 15_000, interval: 200 },
  );
}

async function expectCount(query: string, expected: number) {
  await vi.waitFor(
    async () => {
      expect((await env.client.workflow.count(query)).count).toBe(expected);
    },
    { timeout: 15_000, interval: 200 },
  );
}

/** Lists and counts: both must agree with `expected` (ids, any order). */
async function expectMatches(query: string, runs: number[]) {
  await expectListed(query, runs.map(id));
  await expectCount(query, runs.length);
}

function grpcErrorOf(err: unknown): { code?: number; message: string } {
  let message = '';
  for (
    let e = err as { code?: unknown; details?: unknown; message?: unknown; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    for (const part of [e.message, e.details]) if (typeof part === 'string') message += ` ${part}`;
    if (typeof e.code === 'number') return { code: e.code, message };
  }
  return { message };
}

describe('visibility list and count', () => {
  it("the scope finds exactly this run's six workflows, listed with their details, also across pages", async () => {
    await expectMatches(scope, [0, 1, 2, 3, 4, 5]);
    await expectListed(scope, [0, 1, 2, 3, 4, 5].map(id), { pageSize: 2 });
    const infos = await listAll(`WorkflowId = '${id(1)}'`);
    expect(infos).toHaveLength(1);
    const info = infos[0]!;
    expect(info).toMatchObject({ workflowId: id(1), type: 'quickWorkflow', taskQueue: taskQueueA });
    expect(info.status.name).toBe('COMPLETED');
    expect(info.closeTime).toBeInstanceOf(Date);
    expect(info.typedSearchAttributes.get(colour)).toBe('green');
    expect(info.typedSearchAttributes.get(rank)).toBe(20);
  });

  it('= and != over WorkflowId and WorkflowType', async () => {
    await expectMatches(`WorkflowId = '${id(3)}'`, [3]);
    await expectMatches(`${scope} AND WorkflowId != '${id(3)}'`, [0, 1, 2, 4, 5]);
    await expectMatches(`${scope} AND WorkflowType = 'quickWorkflow'`, [0, 1]);
    await expectMatches(`${scope} AND WorkflowType != 'quickWorkflow'`, [2, 3, 4, 5]);
  });

  it('ExecutionStatus with =, != and IN', async () => {
    await expectMatches(`${scope} AND ExecutionStatus = 'Running'`, [2, 3, 5]);
    await expectMatches(`${scope} AND ExecutionStatus = 'Completed'`, [0, 1]);
    await expectMatches(`${scope} AND ExecutionStatus = 'Terminated'`, [4]);
    await expectMatches(`${scope} AND ExecutionStatus != 'Running'`, [0, 1, 4]);
    await expectMatches(`${scope} AND ExecutionStatus IN ('Completed', 'Terminated')`, [0, 1, 4]);
  });

  it('TaskQueue', async () => {
    await expectMatches(`${scope} AND TaskQueue = '${taskQueueB}'`, [4, 5]);
    await expectMatches(`${scope} AND TaskQueue = '${taskQueueA}'`, [0, 1, 2, 3]);
  });

  it('StartTime and CloseTime with <, >, BETWEEN', async () => {
    const m = marker.toISOString();
    await expectMatches(`${scope} AND StartTime < '${m}'`, [0, 1, 2]);
    await expectMatches(`${scope} AND StartTime > '${m}'`, [3, 4, 5]);
    await expectMatches(`${scope} AND StartTime BETWEEN '${testStart.toISOString()}' AND '${m}'`, [0, 1, 2]);
    await expectMatches(`${scope} AND StartTime > '${new Date(Date.now() + 3_600_000).toISOString()}'`, []);
    // Open runs have no CloseTime: no comparison matches them.
    await expectMatches(`${scope} AND CloseTime > '${testStart.toISOString()}'`, [0, 1, 4]);
  });

  it('custom Keyword and Int attributes with =, <, >, IN, BETWEEN, STARTS_WITH', async () => {
    await expectMatches(`${scope} AND DevVisColour = 'red'`, [0, 3]);
    await expectMatches(`${scope} AND DevVisColour IN ('red', 'blue')`, [0, 2, 3]);
    await expectMatches(`${scope} AND DevVisColour STARTS_WITH 'gr'`, [1, 4]);
    await expectMatches(`${scope} AND DevVisRank > 20`, [2, 3, 4]);
    await expectMatches(`${scope} AND DevVisRank < 30`, [0, 1]);
    await expectMatches(`${scope} AND DevVisRank BETWEEN 20 AND 40`, [1, 2, 3]);
    await expectMatches(`${scope} AND DevVisRank = 50 AND DevVisColour = 'green'`, [4]);
  });

  it('AND binds tighter than OR; parentheses regroup', async () => {
    // WorkflowId = 0 OR (WorkflowId = 1 AND Running): run 1 is completed, so only run 0.
    await expectMatches(
      `WorkflowId = '${id(0)}' OR WorkflowId = '${id(1)}' AND ExecutionStatus = 'Running'`,
      [0],
    );
    await expectMatches(
      `(WorkflowId = '${id(0)}' OR WorkflowId = '${id(1)}') AND ExecutionStatus = 'Completed'`,
      [0, 1],
    );
    await expectMatches(`${scope} AND (DevVisColour = 'red' OR DevVisRank = 50)`, [0, 3, 4]);
    await expectMatches(
      `${scope} AND ((DevVisColour = 'green' AND TaskQueue = '${taskQueueA}') OR (ExecutionStatus = 'Running' AND TaskQueue = '${taskQueueB}'))`,
      [1, 5],
    );
  });

  it('ORDER BY', async () => {
    const cases: [string, number[]][] = [
      [`${scope} AND DevVisRank >= 0 ORDER BY DevVisRank DESC`, [4, 3, 2, 1, 0]],
      [`${scope} AND DevVisRank >= 0 ORDER BY DevVisRank ASC`, [0, 1, 2, 3, 4]],
      [`${scope} AND DevVisRank >= 0 ORDER BY DevVisColour ASC, DevVisRank DESC`, [2, 4, 1, 3, 0]],
      [`${scope} ORDER BY WorkflowId DESC`, [5, 4, 3, 2, 1, 0]],
    ];
    for (const [query, order] of cases) {
      const outcome = await listAll(query).then(
        (infos) => ({ ok: true as const, infos }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      if (!outcome.ok && externalAddress) {
        // A real server with SQL visibility (the CLI dev server's SQLite) rejects ORDER BY:
        // "operation is not supported: 'ORDER BY' clause". Elasticsearch visibility supports it.
        const { code, message } = grpcErrorOf(outcome.err);
        expect(code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(message).toMatch(/ORDER BY/i);
        continue;
      }
      expect(outcome.ok, `ORDER BY must be supported: ${outcome.ok ? '' : String(outcome.err)}`).toBe(true);
      await expectListed(query, order.map(id), { ordered: true });
    }
  });

  it.each<[string, 'list' | 'count', RegExp]>([
    [`${scope} AND WorkflowId LIKE '${P}%'`, 'list', /LIKE/i],
    [`${scope} AND WorkflowId LIKE '${P}%'`, 'count', /LIKE/i],
    [`${scope} LIMIT 5`, 'list', /LIMIT/i],
    [`${scope} GROUP BY ExecutionStatus`, 'list', /GROUP BY/i],
    [`${scope} AND NoSuchAttribute = 'x'`, 'list', /NoSuchAttribute/],
    [`${scope} AND NoSuchAttribute = 'x'`, 'count', /NoSuchAttribute/],
    [`${scope} AND (WorkflowId = 'x'`, 'list', /parenthes|syntax|malformed/i],
    [`${scope} AND DevVisRank > 'not a number'`, 'count', /DevVisRank|not a number|Int/i],
  ])(
    'unsupported or malformed %s (%s) -> INVALID_ARGUMENT naming the problem',
    async (query, what, message) => {
      const err = await (what === 'list' ? listAll(query) : env.client.workflow.count(query)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `${what} ${query} should have failed`).toBeDefined();
      const details = grpcErrorOf(err);
      expect(details.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(details.message).toMatch(message);
    },
  );
});
