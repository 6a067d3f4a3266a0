/**
 * Malformed, incomplete and unknown-target requests, sent as raw `connection.workflowService.*` calls to the
 * embedded server: each gets the right gRPC status with a message naming the field, none of them crashes the
 * server, and a workflow that runs meanwhile is not disturbed.
 *
 * Embedded server only (the forged task tokens below use its token format), so it always runs the launcher
 * through createLocal, even with TEMPORAL_ADDRESS set.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, DEVSERVER_EXECUTABLE, eventTypes, historyOf, uid } from './helpers';
import { quickWorkflow, releaseSignal, stageQuery, waitForRelease } from './workflows/time';

type IStart = temporal.api.workflowservice.v1.IStartWorkflowExecutionRequest;

let env: TestWorkflowEnvironment;
let worker: Worker;
let workerRun: Promise<void>;
let waiting: WorkflowHandleWithFirstExecutionRunId<typeof waitForRelease>;
const taskQueue = uid('bad-input');
const namespace = 'default';

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: DEVSERVER_EXECUTABLE } },
  });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await bundle(path.join(__dirname, 'workflows/time.ts')),
  });
  workerRun = worker.run();
  waiting = await env.client.workflow.start(waitForRelease, { taskQueue, workflowId: uid('waiting') });
  // Its first workflow task is done once the query handler answers.
  expect(await waiting.query(stageQuery)).toBe('waiting');
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun?.catch(() => undefined);
  await env?.teardown();
});

interface BadCase {
  name: string;
  call: () => Promise<unknown>;
  code: grpc.status;
  /** Must appear in the error message (the field or thing that is wrong). */
  message: RegExp;
}

const ws = () => env.connection.workflowService;
const token = (t: object | string) => Buffer.from(typeof t === 'string' ? t : JSON.stringify(t));

function validStart(overrides: Partial<IStart> = {}): IStart {
  return {
    namespace,
    workflowId: uid('bad-start'),
    workflowType: { name: 'quickWorkflow' },
    taskQueue: { name: uid('nobody-polls') },
    requestId: randomUUID(),
    ...overrides,
  };
}

/** The cases; built lazily because some address the running workflow. */
function badCases(): BadCase[] {
  const wid = waiting.workflowId;
  const rid = waiting.firstExecutionRunId;
  const I = grpc.status.INVALID_ARGUMENT;
  const N = grpc.status.NOT_FOUND;
  const U = grpc.status.UNIMPLEMENTED;
  const unknownWid = uid('no-such-workflow');
  return [
    // StartWorkflowExecution: missing and invalid fields.
    {
      name: 'start without workflowId',
      call: () => ws().startWorkflowExecution(validStart({ workflowId: '' })),
      code: I,
      message: /workflowId/,
    },
    {
      name: 'start without workflowType',
      call: () => ws().startWorkflowExecution(validStart({ workflowType: null })),
      code: I,
      message: /workflowType/,
    },
    {
      name: 'start with an empty workflowType name',
      call: () => ws().startWorkflowExecution(validStart({ workflowType: { name: '' } })),
      code: I,
      message: /workflowType/,
    },
    {
      name: 'start without taskQueue',
      call: () => ws().startWorkflowExecution(validStart({ taskQueue: null })),
      code: I,
      message: /taskQueue/,
    },
    {
      name: 'start with a negative workflowRunTimeout',
      call: () => ws().startWorkflowExecution(validStart({ workflowRunTimeout: { seconds: -5 as never } })),
      code: I,
      message: /workflowRunTimeout/,
    },
    {
      name: 'start with a negative workflowExecutionTimeout',
      call: () =>
        ws().startWorkflowExecution(validStart({ workflowExecutionTimeout: { seconds: -1 as never } })),
      code: I,
      message: /workflowExecutionTimeout/,
    },
    {
      name: 'start with a negative workflowTaskTimeout',
      call: () =>
        ws().startWorkflowExecution(
          validStart({ workflowTaskTimeout: { seconds: 0 as never, nanos: -5_000_000 } }),
        ),
      code: I,
      message: /workflowTaskTimeout/,
    },
    {
      name: 'start with a negative workflowStartDelay',
      call: () => ws().startWorkflowExecution(validStart({ workflowStartDelay: { seconds: -10 as never } })),
      code: I,
      message: /workflowStartDelay/,
    },
    {
      name: 'start with a retry policy backoff below 1',
      call: () => ws().startWorkflowExecution(validStart({ retryPolicy: { backoffCoefficient: 0.5 } })),
      code: I,
      message: /backoffCoefficient/,
    },
    {
      name: 'start with negative maximumAttempts',
      call: () => ws().startWorkflowExecution(validStart({ retryPolicy: { maximumAttempts: -1 } })),
      code: I,
      message: /maximumAttempts/,
    },
    {
      name: 'start with a 1001-character workflowId',
      call: () => ws().startWorkflowExecution(validStart({ workflowId: 'x'.repeat(1001) })),
      code: I,
      message: /workflowId/,
    },
    {
      name: 'start with an unregistered search attribute',
      call: () =>
        ws().startWorkflowExecution(
          validStart({
            searchAttributes: {
              indexedFields: { NotRegisteredAnywhere: { metadata: {}, data: Buffer.from('"x"') } },
            },
          }),
        ),
      code: I,
      message: /NotRegisteredAnywhere/,
    },
    {
      name: 'signal-with-start without signalName',
      call: () => ws().signalWithStartWorkflowExecution({ ...validStart(), signalName: '' }),
      code: I,
      message: /signalName/,
    },
    {
      name: 'start with no namespace',
      call: () => ws().startWorkflowExecution(validStart({ namespace: '' })),
      code: I,
      message: /namespace/,
    },

    // Signals, queries.
    {
      name: 'signal without signalName (to the running workflow)',
      call: () =>
        ws().signalWorkflowExecution({ namespace, workflowExecution: { workflowId: wid }, signalName: '' }),
      code: I,
      message: /signalName/,
    },
    {
      name: 'signal without a workflow',
      call: () => ws().signalWorkflowExecution({ namespace, signalName: 'release' }),
      code: I,
      message: /workflowId/,
    },
    {
      name: 'query without queryType',
      call: () => ws().queryWorkflow({ namespace, execution: { workflowId: wid }, query: { queryType: '' } }),
      code: I,
      message: /queryType/,
    },

    // Task tokens.
    {
      name: 'workflow task completion with a garbage token',
      call: () => ws().respondWorkflowTaskCompleted({ namespace, taskToken: token('\u0001garbage') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'workflow task completion without a token',
      call: () => ws().respondWorkflowTaskCompleted({ namespace }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'workflow task completion with a JSON null token',
      call: () => ws().respondWorkflowTaskCompleted({ namespace, taskToken: token('null') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'workflow task completion with an activity token',
      call: () =>
        ws().respondWorkflowTaskCompleted({
          namespace,
          taskToken: token({ k: 'a', ns: namespace, wid, rid, s: 5, a: 1 }),
        }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'workflow task completion with a token lacking its task ids',
      call: () =>
        ws().respondWorkflowTaskCompleted({
          namespace,
          taskToken: token({ k: 'w', ns: namespace, wid, rid }),
        }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'workflow task completion with a stale token of the running workflow',
      call: () =>
        ws().respondWorkflowTaskCompleted({
          namespace,
          taskToken: token({ k: 'w', ns: namespace, wid, rid, s: 999, a: 1 }),
        }),
      code: N,
      message: /workflow task/,
    },
    {
      name: 'workflow task failure with a stale token of the running workflow',
      call: () =>
        ws().respondWorkflowTaskFailed({
          namespace,
          taskToken: token({ k: 'w', ns: namespace, wid, rid, s: 2, a: 7 }),
        }),
      code: N,
      message: /workflow task/,
    },
    {
      name: 'workflow task failure with a garbage token',
      call: () => ws().respondWorkflowTaskFailed({ namespace, taskToken: token('[1,2') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'activity completion with a garbage token',
      call: () => ws().respondActivityTaskCompleted({ namespace, taskToken: token('{"k":') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'activity completion with a workflow token',
      call: () =>
        ws().respondActivityTaskCompleted({
          namespace,
          taskToken: token({ k: 'w', ns: namespace, wid, rid, s: 2, a: 1 }),
        }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'activity completion with a token for an activity that does not exist',
      call: () =>
        ws().respondActivityTaskCompleted({
          namespace,
          taskToken: token({ k: 'a', ns: namespace, wid, rid, s: 3, a: 1 }),
        }),
      code: N,
      message: /activity/,
    },
    {
      name: 'activity completion with a token lacking its task ids',
      call: () =>
        ws().respondActivityTaskCompleted({
          namespace,
          taskToken: token({ k: 'a', ns: namespace, wid, rid }),
        }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'activity failure with a garbage token',
      call: () => ws().respondActivityTaskFailed({ namespace, taskToken: token('x') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'heartbeat with a garbage token',
      call: () => ws().recordActivityTaskHeartbeat({ namespace, taskToken: token('not json') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'heartbeat without a token',
      call: () => ws().recordActivityTaskHeartbeat({ namespace }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'heartbeat with a token of an unknown workflow',
      call: () =>
        ws().recordActivityTaskHeartbeat({
          namespace,
          taskToken: token({ k: 'a', ns: namespace, wid: unknownWid, rid: randomUUID(), s: 5, a: 1 }),
        }),
      code: N,
      message: /not found/,
    },
    {
      name: 'heartbeat with a token of an unknown namespace',
      call: () =>
        ws().recordActivityTaskHeartbeat({
          namespace,
          taskToken: token({ k: 'a', ns: 'no-such-ns', wid, rid, s: 5, a: 1 }),
        }),
      code: N,
      message: /no-such-ns/,
    },
    {
      name: 'query task completion with a garbage token',
      call: () => ws().respondQueryTaskCompleted({ namespace, taskToken: token('??') }),
      code: I,
      message: /taskToken/,
    },
    {
      name: 'activity completion by id without activityId',
      call: () => ws().respondActivityTaskCompletedById({ namespace, workflowId: wid, runId: rid }),
      code: I,
      message: /activityId/,
    },
    {
      name: 'activity completion by id for an unknown activity',
      call: () =>
        ws().respondActivityTaskCompletedById({ namespace, workflowId: wid, runId: rid, activityId: 'nope' }),
      code: N,
      message: /nope/,
    },

    // Page tokens and visibility queries.
    {
      name: 'list with a garbage nextPageToken',
      call: () => ws().listWorkflowExecutions({ namespace, nextPageToken: token('garbage') }),
      code: I,
      message: /nextPageToken/,
    },
    {
      name: 'list with a negative nextPageToken',
      call: () => ws().listWorkflowExecutions({ namespace, nextPageToken: token('-1') }),
      code: I,
      message: /nextPageToken/,
    },
    {
      name: 'history with a garbage nextPageToken',
      call: () =>
        ws().getWorkflowExecutionHistory({
          namespace,
          execution: { workflowId: wid },
          nextPageToken: token('{{'),
        }),
      code: I,
      message: /nextPageToken/,
    },
    {
      name: 'history with a nextPageToken of another run',
      call: () =>
        ws().getWorkflowExecutionHistory({
          namespace,
          execution: { workflowId: wid },
          nextPageToken: token({ rid: randomUUID(), next: 2 }),
        }),
      code: I,
      message: /nextPageToken/,
    },
    {
      name: 'list with a malformed query',
      call: () => ws().listWorkflowExecutions({ namespace, query: "WorkflowId = 'a' AND" }),
      code: I,
      message: /query/,
    },
    {
      name: 'list with an unknown attribute',
      call: () => ws().listWorkflowExecutions({ namespace, query: "Nope = 'a'" }),
      code: I,
      message: /Nope/,
    },
    {
      name: 'count with a malformed query',
      call: () => ws().countWorkflowExecutions({ namespace, query: 'WorkflowId = = 1' }),
      code: I,
      message: /query/,
    },

    // Unknown namespace.
    {
      name: 'start in an unknown namespace',
      call: () => ws().startWorkflowExecution(validStart({ namespace: 'no-such-ns' })),
      code: N,
      message: /no-such-ns/,
    },
    {
      name: 'describe an unknown namespace',
      call: () => ws().describeNamespace({ namespace: 'no-such-ns' }),
      code: N,
      message: /no-such-ns/,
    },
    {
      name: 'list in an unknown namespace',
      call: () => ws().listWorkflowExecutions({ namespace: 'no-such-ns' }),
      code: N,
      message: /no-such-ns/,
    },
    {
      name: 'signal in an unknown namespace',
      call: () =>
        ws().signalWorkflowExecution({
          namespace: 'no-such-ns',
          workflowExecution: { workflowId: wid },
          signalName: 'release',
        }),
      code: N,
      message: /no-such-ns/,
    },
    {
      name: 'poll in an unknown namespace',
      call: () => ws().pollWorkflowTaskQueue({ namespace: 'no-such-ns', taskQueue: { name: taskQueue } }),
      code: N,
      message: /no-such-ns/,
    },
    {
      name: 'poll without a task queue',
      call: () => ws().pollActivityTaskQueue({ namespace }),
      code: I,
      message: /taskQueue/,
    },

    // Unknown workflow or run.
    {
      name: 'describe an unknown workflow',
      call: () => ws().describeWorkflowExecution({ namespace, execution: { workflowId: unknownWid } }),
      code: N,
      message: /not found/,
    },
    {
      name: 'describe an unknown run of the running workflow',
      call: () =>
        ws().describeWorkflowExecution({ namespace, execution: { workflowId: wid, runId: randomUUID() } }),
      code: N,
      message: /not found/,
    },
    {
      name: 'signal an unknown workflow',
      call: () =>
        ws().signalWorkflowExecution({
          namespace,
          workflowExecution: { workflowId: unknownWid },
          signalName: 'release',
        }),
      code: N,
      message: /not found/,
    },
    {
      name: 'signal an unknown run of the running workflow',
      call: () =>
        ws().signalWorkflowExecution({
          namespace,
          workflowExecution: { workflowId: wid, runId: randomUUID() },
          signalName: 'release',
        }),
      code: N,
      message: /not found/,
    },
    {
      name: 'terminate an unknown workflow',
      call: () =>
        ws().terminateWorkflowExecution({ namespace, workflowExecution: { workflowId: unknownWid } }),
      code: N,
      message: /not found/,
    },
    {
      name: 'terminate the running workflow under a wrong firstExecutionRunId',
      call: () =>
        ws().terminateWorkflowExecution({
          namespace,
          workflowExecution: { workflowId: wid },
          firstExecutionRunId: randomUUID(),
        }),
      code: N,
      message: /not found/,
    },
    {
      name: 'cancel an unknown workflow',
      call: () =>
        ws().requestCancelWorkflowExecution({ namespace, workflowExecution: { workflowId: unknownWid } }),
      code: N,
      message: /not found/,
    },
    {
      name: 'history of an unknown workflow',
      call: () => ws().getWorkflowExecutionHistory({ namespace, execution: { workflowId: unknownWid } }),
      code: N,
      message: /not found/,
    },
    {
      name: 'query an unknown workflow',
      call: () =>
        ws().queryWorkflow({
          namespace,
          execution: { workflowId: unknownWid },
          query: { queryType: 'stage' },
        }),
      code: N,
      message: /not found/,
    },

    // Not implemented by this server.
    {
      name: 'updateWorkflowExecution',
      call: () =>
        ws().updateWorkflowExecution({
          namespace,
          workflowExecution: { workflowId: wid },
          request: { input: { name: 'u' } },
        }),
      code: U,
      message: /UpdateWorkflowExecution/,
    },
    {
      name: 'createSchedule',
      call: () => ws().createSchedule({ namespace, scheduleId: uid('sched') }),
      code: U,
      message: /CreateSchedule/,
    },
    {
      name: 'listSchedules',
      call: () => ws().listSchedules({ namespace }),
      code: U,
      message: /ListSchedules/,
    },
    {
      name: 'pollWorkflowExecutionUpdate',
      call: () =>
        ws().pollWorkflowExecutionUpdate({
          namespace,
          updateRef: { workflowExecution: { workflowId: wid }, updateId: 'u' },
        }),
      code: U,
      message: /PollWorkflowExecutionUpdate/,
    },
  ];
}

async function outcomeOf(c: BadCase): Promise<{ name: string; code: number | string; message: string }> {
  try {
    await c.call();
    return { name: c.name, code: 'OK', message: '' };
  } catch (err) {
    const e = err as { code?: number; details?: string; message?: string };
    return { name: c.name, code: e.code ?? 'no code', message: e.details ?? e.message ?? '' };
  }
}

function expectOutcomes(
  cases: BadCase[],
  outcomes: { name: string; code: number | string; message: string }[],
): void {
  const wrong = outcomes.filter((o, i) => o.code !== cases[i]!.code || !cases[i]!.message.test(o.message));
  const describeCase = (o: { name: string; code: number | string; message: string }, c: BadCase) =>
    `${o.name}: got ${typeof o.code === 'number' ? grpc.status[o.code] : o.code} "${o.message}", want ${grpc.status[c.code]} matching ${String(c.message)}`;
  expect(
    wrong.map((o) => describeCase(o, cases[outcomes.indexOf(o)]!)),
    'requests answered with the wrong status or message',
  ).toEqual([]);
}

async function expectServerHealthy(): Promise<void> {
  const info = await ws().getSystemInfo({});
  expect(info.capabilities?.sdkMetadata).toBe(true);
  const described = await ws().describeWorkflowExecution({
    namespace,
    execution: { workflowId: waiting.workflowId },
  });
  expect(described.workflowExecutionInfo?.status).toBe(
    temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
  );
}

describe('bad input on the embedded server', () => {
  it('each bad request, one at a time, gets the right status and a message naming the field', async () => {
    const cases = badCases();
    const outcomes = [];
    for (const c of cases) outcomes.push(await outcomeOf(c));
    expectOutcomes(cases, outcomes);
    await expectServerHealthy();
  });

  it('all of them at once, three times over, do not crash the server', async () => {
    const cases = [...badCases(), ...badCases(), ...badCases()];
    const outcomes = await Promise.all(cases.map(outcomeOf));
    expectOutcomes(cases, outcomes);
    await expectServerHealthy();
  });

  it('undecodable request bytes and an unknown service are refused without harm', async () => {
    const client = new grpc.Client(env.address, grpc.credentials.createInsecure());
    try {
      const call = (method: string, body: Buffer) =>
        new Promise<grpc.ServiceError | undefined>((resolve) => {
          client.makeUnaryRequest(
            method,
            (b: Buffer) => b,
            (b: Buffer) => b,
            body,
            (err) => resolve(err ?? undefined),
          );
        });
      // Field 2 (workflow_id) claims 100 bytes but the message ends after 3: protobuf decoding fails.
      const truncated = Buffer.from([0x12, 0x64, 0x61, 0x62, 0x63]);
      const errors = await Promise.all([
        call('/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution', truncated),
        call(
          '/temporal.api.workflowservice.v1.WorkflowService/SignalWorkflowExecution',
          Buffer.from([0xff, 0xff, 0xff, 0xff]),
        ),
        call('/temporal.api.nosuch.v1.NoSuchService/DoIt', Buffer.alloc(0)),
      ]);
      expect(errors.map((e) => e?.code)).toEqual([
        grpc.status.INTERNAL,
        grpc.status.INTERNAL,
        grpc.status.UNIMPLEMENTED,
      ]);
    } finally {
      client.close();
    }
    await expectServerHealthy();
  });

  it('the workflow that ran through all of it is undisturbed: it takes its signal and completes', async () => {
    expect(await waiting.query(stageQuery)).toBe('waiting');
    await waiting.signal(releaseSignal, 'after the storm');
    expect(await waiting.result()).toBe('after the storm');
    const types = eventTypes(await historyOf(waiting));
    expect(types.filter((t) => t === 'WorkflowExecutionSignaled')).toHaveLength(1);
    expect(types.filter((t) => /WorkflowTask(Failed|TimedOut)/.test(t))).toEqual([]);
    expect(types.at(-1)).toBe('WorkflowExecutionCompleted');
    // And new work still runs end to end.
    expect(
      await env.client.workflow.execute(quickWorkflow, {
        taskQueue,
        workflowId: uid('after'),
        args: ['fine'],
      }),
    ).toBe('fine');
    expect((await ws().getSystemInfo({})).serverVersion).not.toBe('');
  });
});
