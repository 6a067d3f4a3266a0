/**
 * The real-time core of the conformance suite: runs on the embedded server launched through the stock
 * `TestWorkflowEnvironment.createLocal` (Temporal CLI command line), or unchanged against any real Temporal
 * server when TEMPORAL_ADDRESS is set.
 */
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as activities from './activities';
import { bundle, createRealTimeEnv, eventTypes, historyOf, replay, uid } from './helpers';
import {
  cancellableWorkflow,
  childParentWorkflow,
  greetWorkflow,
  signalWorkflow,
  stateQuery,
  unblock,
} from './workflows/basic';

const workflowsFile = path.join(__dirname, 'workflows/basic.ts');
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const taskQueue = uid('realtime');

beforeAll(async () => {
  env = await createRealTimeEnv();
  worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await bundle(workflowsFile),
    activities,
  });
  running = worker.run();
}, 60_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
});

describe('real-time conformance', () => {
  it('runs an activity and writes the real server event sequence', async () => {
    const handle = await env.client.workflow.start(greetWorkflow, {
      taskQueue,
      workflowId: uid('greet'),
      args: ['Aceh'],
    });
    expect(await handle.result()).toBe('Hello, Aceh!');
    const history = await historyOf(handle);
    expect(eventTypes(history)).toEqual([
      'WorkflowExecutionStarted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
      'WorkflowTaskCompleted',
      'ActivityTaskScheduled',
      'ActivityTaskStarted',
      'ActivityTaskCompleted',
      'WorkflowTaskScheduled',
      'WorkflowTaskStarted',
      'WorkflowTaskCompleted',
      'WorkflowExecutionCompleted',
    ]);
    await replay(history, workflowsFile, handle.workflowId);
    const described = await handle.describe();
    expect(described.status.name).toBe('COMPLETED');
    expect(described.type).toBe('greetWorkflow');
    expect(described.taskQueue).toBe(taskQueue);
  });

  it('delivers signals and answers queries before and after completion', async () => {
    const handle = await env.client.workflow.start(signalWorkflow, { taskQueue, workflowId: uid('signal') });
    expect(await handle.query(stateQuery)).toBe('waiting');
    await handle.signal(unblock, 'go');
    expect(await handle.result()).toBe('go');
    expect(await handle.query(stateQuery)).toBe('got go');
    const history = await historyOf(handle);
    expect(eventTypes(history)).toContain('WorkflowExecutionSignaled');
    await replay(history, workflowsFile, handle.workflowId);
  });

  it('runs a child workflow', async () => {
    const id = uid('parent');
    const handle = await env.client.workflow.start(childParentWorkflow, {
      taskQueue,
      workflowId: id,
      args: [id],
    });
    expect(await handle.result()).toBe(`Hello, ${id}!`);
    const types = eventTypes(await historyOf(handle));
    expect(types.indexOf('StartChildWorkflowExecutionInitiated')).toBeGreaterThan(0);
    expect(types.indexOf('ChildWorkflowExecutionStarted')).toBeGreaterThan(
      types.indexOf('StartChildWorkflowExecutionInitiated'),
    );
    expect(types.indexOf('ChildWorkflowExecutionCompleted')).toBeGreaterThan(
      types.indexOf('ChildWorkflowExecutionStarted'),
    );
    await replay(await historyOf(handle), workflowsFile, id);
  });

  it('cancels a workflow that handles cancellation, and terminates one that does not finish', async () => {
    const handle = await env.client.workflow.start(cancellableWorkflow, {
      taskQueue,
      workflowId: uid('cancel'),
    });
    await handle.cancel();
    expect(await handle.result()).toBe('cancelled');
    const types = eventTypes(await historyOf(handle));
    expect(types).toContain('WorkflowExecutionCancelRequested');
    expect(types).toContain('TimerCanceled');
    await replay(await historyOf(handle), workflowsFile, handle.workflowId);

    const stuck = await env.client.workflow.start(signalWorkflow, {
      taskQueue,
      workflowId: uid('terminate'),
    });
    await stuck.terminate('no longer needed');
    const err = await stuck.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((await stuck.describe()).status.name).toBe('TERMINATED');
    await replay(await historyOf(stuck), workflowsFile, stuck.workflowId);
  });
});
