/**
 * The task protocol at the wire, without an SDK worker: a test plays the worker with raw gRPC calls, so
 * that the server's own rules can be observed exactly (buffered events invisible until the task
 * completes, UnhandledCommand, workflow-task timeouts and attempts, long polls answered empty before the
 * deadline, cancelled polls never swallowing a task, queries riding on a workflow task).
 */
import { randomUUID } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DevServer } from '../../src/devserver/server';
import { eventTypes, uid } from './helpers';

const { EventType, CommandType, WorkflowTaskFailedCause } = temporal.api.enums.v1;
type PollResponse = temporal.api.workflowservice.v1.PollWorkflowTaskQueueResponse;

let server: DevServer;
let connection: Connection;
const namespace = 'default';
const json = (value: unknown) => ({
  metadata: { encoding: Buffer.from('json/plain') },
  data: Buffer.from(JSON.stringify(value)),
});

beforeAll(async () => {
  server = await DevServer.start({ port: 0 });
  connection = await Connection.connect({ address: server.address });
});

afterAll(async () => {
  await connection?.close();
  await server?.stop();
});

async function start(
  taskQueue: string,
  options: { workflowTaskTimeoutMs?: number } = {},
  conn: Connection = connection,
) {
  const workflowId = uid('raw');
  const { runId } = await conn.workflowService.startWorkflowExecution({
    namespace,
    workflowId,
    workflowType: { name: 'rawWorkflow' },
    taskQueue: { name: taskQueue },
    requestId: randomUUID(),
    workflowTaskTimeout: options.workflowTaskTimeoutMs ? msToTs(options.workflowTaskTimeoutMs) : undefined,
  });
  return { workflowId, runId };
}

function pollWorkflowTask(
  taskQueue: string,
  timeoutMs = 20_000,
  conn: Connection = connection,
): Promise<PollResponse> {
  return conn.withDeadline(Date.now() + timeoutMs, () =>
    conn.workflowService.pollWorkflowTaskQueue({
      namespace,
      taskQueue: { name: taskQueue },
      identity: 'raw-test',
    }),
  );
}

async function history(workflowId: string, runId: string): Promise<string[]> {
  const res = await connection.workflowService.getWorkflowExecutionHistory({
    namespace,
    execution: { workflowId, runId },
  });
  return eventTypes(res.history ?? {});
}

function signal(workflowId: string, name = 'poke') {
  return connection.workflowService.signalWorkflowExecution({
    namespace,
    workflowExecution: { workflowId },
    signalName: name,
    input: { payloads: [json(name)] },
    requestId: randomUUID(),
  });
}

describe('workflow task protocol', () => {
  it('hides events that arrive during a started task, then writes them after its completion', async () => {
    const tq = uid('tq');
    const { workflowId, runId } = await start(tq);
    const task = await pollWorkflowTask(tq);
    expect(task.taskToken.length).toBeGreaterThan(0);
    expect(task.startedEventId.toNumber()).toBe(3);
    expect(task.previousStartedEventId.toNumber()).toBe(0);
    expect(eventTypes(task.history ?? {})).toEqual([
      'WorkflowExecutionStarted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
    ]);

    await signal(workflowId);
    // Buffered: invisible in history while the task is started.
    expect(await history(workflowId, runId)).toEqual([
      'WorkflowExecutionStarted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
    ]);

    await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: task.taskToken,
      commands: [],
    });
    expect(await history(workflowId, runId)).toEqual([
      'WorkflowExecutionStarted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
      'WorkflowTaskCompleted',
      'WorkflowExecutionSignaled',
      'WorkflowTaskScheduled',
    ]);
    const next = await pollWorkflowTask(tq);
    expect(next.previousStartedEventId.toNumber()).toBe(3);
    expect(next.startedEventId.toNumber()).toBe(7);
    // A second completion with the first task's token is stale.
    await expect(
      connection.workflowService.respondWorkflowTaskCompleted({
        namespace,
        taskToken: task.taskToken,
        commands: [],
      }),
    ).rejects.toMatchObject({ code: 5 });
    await connection.workflowService.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
    });
  });

  it('refuses to close a workflow over a buffered event with UnhandledCommand and schedules a new task', async () => {
    const tq = uid('tq');
    const { workflowId, runId } = await start(tq);
    const task = await pollWorkflowTask(tq);
    await signal(workflowId);
    await expect(
      connection.workflowService.respondWorkflowTaskCompleted({
        namespace,
        taskToken: task.taskToken,
        commands: [
          {
            commandType: CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
            completeWorkflowExecutionCommandAttributes: { result: { payloads: [json('done')] } },
          },
        ],
      }),
    ).rejects.toMatchObject({ code: 3, details: 'UnhandledCommand' });
    const res = await connection.workflowService.getWorkflowExecutionHistory({
      namespace,
      execution: { workflowId, runId },
    });
    const events = res.history?.events ?? [];
    expect(eventTypes(res.history ?? {})).toEqual([
      'WorkflowExecutionStarted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
      'WorkflowTaskFailed',
      'WorkflowExecutionSignaled',
      'WorkflowTaskScheduled',
    ]);
    expect(events[3]?.workflowTaskFailedEventAttributes?.cause).toBe(
      WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
    );
    // The new task sees the signal and may now complete.
    const retry = await pollWorkflowTask(tq);
    expect(eventTypes(retry.history ?? {})).toContain('WorkflowExecutionSignaled');
    await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: retry.taskToken,
      commands: [
        {
          commandType: CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
          completeWorkflowExecutionCommandAttributes: { result: { payloads: [json('done')] } },
        },
      ],
    });
    const described = await connection.workflowService.describeWorkflowExecution({
      namespace,
      execution: { workflowId },
    });
    expect(described.workflowExecutionInfo?.status).toBe(
      temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    );
  });

  it('times a silent workflow task out and hands out the next attempt', async () => {
    const tq = uid('tq');
    const { workflowId, runId } = await start(tq, { workflowTaskTimeoutMs: 300 });
    const first = await pollWorkflowTask(tq);
    expect(first.attempt).toBe(1);
    // Nobody answers: the server times the task out after 300 ms and schedules attempt 2.
    const second = await pollWorkflowTask(tq);
    expect(second.attempt).toBe(2);
    const types = await history(workflowId, runId);
    expect(types.slice(0, 6)).toEqual([
      'WorkflowExecutionStarted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
      'WorkflowTaskTimedOut',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
    ]);
    await expect(
      connection.workflowService.respondWorkflowTaskCompleted({
        namespace,
        taskToken: first.taskToken,
        commands: [],
      }),
    ).rejects.toMatchObject({ code: 5 });
    await connection.workflowService.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
    });
  });

  it('answers a long poll empty before its deadline', async () => {
    const t0 = Date.now();
    const res = await pollWorkflowTask(uid('idle'), 2_500);
    expect(res.taskToken.length).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2_500);
  });

  it('never hands a task to a poll its caller cancelled', async () => {
    const tq = uid('tq');
    const abort = new AbortController();
    const abandoned = connection
      .withAbortSignal(abort.signal, () =>
        connection.workflowService.pollWorkflowTaskQueue({
          namespace,
          taskQueue: { name: tq },
          identity: 'gone',
        }),
      )
      .catch((err: unknown) => err);
    await vi.waitFor(() => expect(server.engine.matching.waitingPolls(namespace, tq, 'workflow')).toBe(1));
    abort.abort();
    await abandoned;
    // The server learns of the cancellation asynchronously (HTTP/2 RST_STREAM); once it has, the poll is gone.
    await vi.waitFor(() => expect(server.engine.matching.waitingPolls(namespace, tq, 'workflow')).toBe(0));
    const { workflowId } = await start(tq);
    const task = await pollWorkflowTask(tq, 5_000);
    expect(task.workflowExecution?.workflowId).toBe(workflowId);
    expect(task.attempt).toBe(1);
    await connection.workflowService.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
    });
  });

  it('delivers a query that arrives during a task on the next task, and answers it from query_results', async () => {
    const tq = uid('tq');
    const { workflowId } = await start(tq);
    const task = await pollWorkflowTask(tq);
    const query = connection.workflowService.queryWorkflow({
      namespace,
      execution: { workflowId },
      query: { queryType: 'state' },
    });
    // A signal forces a new task, which carries the query.
    await signal(workflowId);
    await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: task.taskToken,
      commands: [],
    });
    const next = await pollWorkflowTask(tq);
    const queries = Object.entries(next.queries ?? {});
    expect(queries).toHaveLength(1);
    expect(queries[0]?.[1].queryType).toBe('state');
    await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: next.taskToken,
      commands: [],
      queryResults: {
        [queries[0]![0]]: {
          resultType: temporal.api.enums.v1.QueryResultType.QUERY_RESULT_TYPE_ANSWERED,
          answer: { payloads: [json('ready')] },
        },
      },
    });
    const answer = await query;
    expect(Buffer.from(answer.queryResult?.payloads?.[0]?.data ?? []).toString()).toBe('"ready"');
    await connection.workflowService.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
    });
  });

  it('sends a legacy query task when no workflow task is in flight', async () => {
    const tq = uid('tq');
    const { workflowId } = await start(tq);
    const task = await pollWorkflowTask(tq);
    await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: task.taskToken,
      commands: [],
    });
    const query = connection.workflowService
      .queryWorkflow({ namespace, execution: { workflowId }, query: { queryType: 'state' } })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    const queryTask = await pollWorkflowTask(tq);
    expect(queryTask.query?.queryType).toBe('state');
    expect(queryTask.startedEventId.toNumber()).toBe(0);
    expect(eventTypes(queryTask.history ?? {}).at(-1)).toBe('WorkflowTaskCompleted');
    await connection.workflowService.respondQueryTaskCompleted({
      namespace,
      taskToken: queryTask.taskToken,
      completedType: temporal.api.enums.v1.QueryResultType.QUERY_RESULT_TYPE_FAILED,
      errorMessage: 'no handler for state',
    });
    expect(await query).toMatchObject({ code: 3, details: 'no handler for state' });
    // Queries write nothing into history.
    const res = await connection.workflowService.getWorkflowExecutionHistory({
      namespace,
      execution: { workflowId },
    });
    expect((res.history?.events ?? []).map((e) => e.eventType)).not.toContain(
      EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    );
    expect(res.history?.events).toHaveLength(4);
    await connection.workflowService.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
    });
  });
});

describe('retention', () => {
  it('forgets closed runs once the namespace retention has passed', async () => {
    const ns = uid('short-retention');
    await connection.workflowService.registerNamespace({
      namespace: ns,
      workflowExecutionRetentionPeriod: msToTs(300),
    });
    const workflowId = uid('retained');
    await connection.workflowService.startWorkflowExecution({
      namespace: ns,
      workflowId,
      workflowType: { name: 'rawWorkflow' },
      taskQueue: { name: 'nobody' },
      requestId: randomUUID(),
    });
    const describe = () =>
      connection.workflowService.describeWorkflowExecution({ namespace: ns, execution: { workflowId } });
    await connection.workflowService.terminateWorkflowExecution({
      namespace: ns,
      workflowExecution: { workflowId },
    });
    expect((await describe()).workflowExecutionInfo?.status).toBe(
      temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    );
    await vi.waitFor(() => expect(describe()).rejects.toMatchObject({ code: 5 }), {
      timeout: 5_000,
      interval: 100,
    });
  });
});

describe('eager activity dispatch', () => {
  const scheduleActivity = (activityId: string, tq: string, requestEagerExecution: boolean) => ({
    commandType: CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
    scheduleActivityTaskCommandAttributes: {
      activityId,
      activityType: { name: 'rawActivity' },
      taskQueue: { name: tq },
      input: { payloads: [json(activityId)] },
      startToCloseTimeout: msToTs(10_000),
      requestEagerExecution,
    },
  });
  const pollActivityTask = (conn: Connection, tq: string, timeoutMs = 20_000) =>
    conn.withDeadline(Date.now() + timeoutMs, () =>
      conn.workflowService.pollActivityTaskQueue({ namespace, taskQueue: { name: tq }, identity: 'poller' }),
    );

  it('hands the activities a completion asks for back in its response, started for the completing worker', async () => {
    const tq = uid('tq');
    const { workflowId, runId } = await start(tq);
    const task = await pollWorkflowTask(tq);
    const response = await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: task.taskToken,
      identity: 'eager-worker',
      commands: [scheduleActivity('eager-1', tq, true), scheduleActivity('queued-1', tq, false)],
    });
    expect(response.activityTasks.map((t) => t.activityId)).toEqual(['eager-1']);
    const [eager] = response.activityTasks;
    expect(eager!.activityType?.name).toBe('rawActivity');
    expect(eager!.workflowExecution).toMatchObject({ workflowId, runId });
    expect(eager!.attempt).toBe(1);
    expect(eager!.startToCloseTimeout?.seconds?.toString()).toBe('10');
    expect(eager!.input?.payloads?.[0]?.data?.toString()).toBe('"eager-1"');

    // The other activity goes through the task queue, and only it: the eager one is not handed out twice.
    const queued = await pollActivityTask(connection, tq);
    expect(queued.activityId).toBe('queued-1');
    expect((await pollActivityTask(connection, tq, 300)).taskToken?.length ?? 0).toBe(0);

    await connection.workflowService.respondActivityTaskCompleted({
      namespace,
      taskToken: eager!.taskToken,
      identity: 'eager-worker',
      result: { payloads: [json('done')] },
    });
    const events = (
      await connection.workflowService.getWorkflowExecutionHistory({
        namespace,
        execution: { workflowId, runId },
      })
    ).history!.events!;
    const started = events.find((e) => e.activityTaskStartedEventAttributes);
    expect(started?.activityTaskStartedEventAttributes?.identity).toBe('eager-worker');
    expect(eventTypes({ events })).toContain('ActivityTaskCompleted');
    await connection.workflowService.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
    });
  });

  it('hands out nothing when the same completion closes the workflow', async () => {
    const tq = uid('tq');
    await start(tq);
    const task = await pollWorkflowTask(tq);
    const response = await connection.workflowService.respondWorkflowTaskCompleted({
      namespace,
      taskToken: task.taskToken,
      commands: [
        scheduleActivity('eager-2', tq, true),
        {
          commandType: CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
          completeWorkflowExecutionCommandAttributes: { result: { payloads: [json('done')] } },
        },
      ],
    });
    expect(response.activityTasks).toEqual([]);
    expect((await pollActivityTask(connection, tq, 300)).taskToken?.length ?? 0).toBe(0);
  });

  it('queues every activity when the server has eager dispatch turned off', async () => {
    const off = await DevServer.start({ port: 0, eagerActivityExecution: false });
    const conn = await Connection.connect({ address: off.address });
    try {
      const tq = uid('tq');
      await start(tq, {}, conn);
      const task = await pollWorkflowTask(tq, 20_000, conn);
      const response = await conn.workflowService.respondWorkflowTaskCompleted({
        namespace,
        taskToken: task.taskToken,
        commands: [scheduleActivity('eager-3', tq, true)],
      });
      expect(response.activityTasks).toEqual([]);
      expect((await pollActivityTask(conn, tq)).activityId).toBe('eager-3');
    } finally {
      await conn.close();
      await off.stop();
    }
  });
});
