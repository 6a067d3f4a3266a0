import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as activities from './activities';
import { greetWorkflow, sleepWorkflow, signalWorkflow, unblock, stateQuery } from './workflows/basic';

const exe = path.resolve(__dirname, '../../bin/temporal-devserver');
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  bundle = await bundleWorkflowCode({ workflowsPath: path.join(__dirname, 'workflows/basic.ts') });
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: exe } },
  });
}, 60_000);
afterAll(async () => {
  await env?.teardown();
});

describe('smoke', () => {
  it('runs a workflow with an activity, a long sleep and a signal', async () => {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'smoke',
      workflowBundle: bundle,
      activities,
    });
    await worker.runUntil(async () => {
      expect(
        await env.client.workflow.execute(greetWorkflow, {
          taskQueue: 'smoke',
          workflowId: 'g1',
          args: ['you'],
        }),
      ).toBe('Hello, you!');
      const t0 = Date.now();
      expect(
        await env.client.workflow.execute(sleepWorkflow, {
          taskQueue: 'smoke',
          workflowId: 's1',
          args: [86_400_000],
        }),
      ).toBe(86_400_000);
      expect(Date.now() - t0).toBeLessThan(5000);
      const h = await env.client.workflow.start(signalWorkflow, { taskQueue: 'smoke', workflowId: 'q1' });
      expect(await h.query(stateQuery)).toBe('waiting');
      await h.signal(unblock, 'x');
      expect(await h.result()).toBe('x');
      expect(await h.query(stateQuery)).toBe('got x');
    });
  });
});
