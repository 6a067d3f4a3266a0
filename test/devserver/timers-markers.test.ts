/**
 * Timer and marker conformance on the time-skipping embedded server: timer start / fire / cancel (checked
 * against a real-server history), long sleeps skipped in wall time, local-activity and patch markers,
 * search-attribute and memo upserts, and a bad search attribute failing the workflow task (not the server).
 * Every produced history is replayed.
 */
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { defineSearchAttributeKey } from '@temporalio/common';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as activities from './activities-conformance';
import {
  bundle,
  createTimeSkippingEnv,
  eventTypeName,
  eventTypes,
  historyOf,
  referenceEventTypes,
  replay,
  runWithWorker,
  uid,
  type History,
} from './helpers';
import {
  localActivity,
  patchedWorkflow,
  sleeper,
  timerAndActivity,
  upsertKeyword,
  upsertNote,
} from './workflows/activities';

const WORKFLOWS = path.join(__dirname, 'workflows/activities.ts');
const KEYWORD_ATTRIBUTE = 'ConformanceKeyword';
const Cause = temporal.api.enums.v1.WorkflowTaskFailedCause;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  await bundle(WORKFLOWS);
  env = await createTimeSkippingEnv();
}, 60_000);

afterAll(async () => {
  await env?.teardown();
});

/** Runs `fn` with a worker polling a fresh task queue. */
function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  return runWithWorker(env, { workflowsFile: WORKFLOWS, activities, queuePrefix: 'timers' }, fn);
}

async function checkedHistory(handle: WorkflowHandle): Promise<History> {
  const history = await historyOf(handle);
  await replay(history, WORKFLOWS, handle.workflowId);
  return history;
}

function eventsOf(history: History, type: string): HistoryEvent[] {
  return (history.events ?? []).filter((e) => eventTypeName(e.eventType) === type);
}

function only(history: History, type: string): HistoryEvent {
  const events = eventsOf(history, type);
  expect(events, `exactly one ${type}`).toHaveLength(1);
  return events[0]!;
}

/** Follows the history with long polls (waitNewEvent) until an event of `type` is written. */
async function waitForEvent(handle: WorkflowHandle, type: string): Promise<HistoryEvent> {
  let nextPageToken: Uint8Array | undefined;
  for (;;) {
    const page = await env.client.workflowService.getWorkflowExecutionHistory({
      namespace: env.client.options.namespace,
      execution: { workflowId: handle.workflowId },
      waitNewEvent: true,
      nextPageToken,
    });
    const found = page.history?.events?.find((e) => eventTypeName(e.eventType) === type);
    if (found) return found;
    if (!page.nextPageToken?.length) throw new Error(`the history ended without a ${type} event`);
    nextPageToken = page.nextPageToken;
  }
}

/** A workflow whose single workflow task wrote `commandEvents` and completed it. */
function oneTaskSequence(...commandEvents: string[]): string[] {
  return [
    'WorkflowExecutionStarted',
    'WorkflowTaskScheduled',
    'WorkflowTaskStarted',
    'WorkflowTaskCompleted',
    ...commandEvents,
    'WorkflowExecutionCompleted',
  ];
}

describe('timers', () => {
  it('timer and activity in one task, then the timer is cancelled: same sequence as the real server', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(timerAndActivity, {
        taskQueue,
        workflowId: uid('timer-activity'),
      });
      expect(await handle.result()).toBe('in time');
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(
        referenceEventTypes('sdk-typescript__lang_flags_replay_correctly_1_11_2.json'),
      );
      const timerStarted = only(history, 'TimerStarted');
      const canceled = only(history, 'TimerCanceled').timerCanceledEventAttributes;
      expect(canceled?.timerId).toBe(timerStarted.timerStartedEventAttributes?.timerId);
      expect(Number(canceled?.startedEventId)).toBe(Number(timerStarted.eventId));
      expect(eventsOf(history, 'TimerFired')).toHaveLength(0);
    });
  });

  it('a 30-day sleep fires after TimerStarted, 30 days later in workflow time, in seconds of wall time', async () => {
    await withWorker(async (taskQueue) => {
      const thirtyDays = 30 * 24 * 3_600_000;
      const t0 = Date.now();
      const handle = await env.client.workflow.start(sleeper, {
        taskQueue,
        workflowId: uid('sleep'),
        args: [thirtyDays],
      });
      expect(await handle.result()).toBe(thirtyDays);
      expect(Date.now() - t0).toBeLessThan(5000);
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual([
        'WorkflowExecutionStarted',
        'WorkflowTaskScheduled',
        'WorkflowTaskStarted',
        'WorkflowTaskCompleted',
        'TimerStarted',
        'TimerFired',
        'WorkflowTaskScheduled',
        'WorkflowTaskStarted',
        'WorkflowTaskCompleted',
        'WorkflowExecutionCompleted',
      ]);
      const started = only(history, 'TimerStarted');
      const fired = only(history, 'TimerFired');
      expect(Number(fired.timerFiredEventAttributes?.startedEventId)).toBe(Number(started.eventId));
      expect(fired.timerFiredEventAttributes?.timerId).toBe(started.timerStartedEventAttributes?.timerId);
      expect(tsToMs(fired.eventTime) - tsToMs(started.eventTime)).toBeGreaterThanOrEqual(thirtyDays);
    });
  });
});

describe('markers and workflow properties', () => {
  it('a local activity writes a core_local_activity MarkerRecorded', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(localActivity, {
        taskQueue,
        workflowId: uid('local-activity'),
        args: ['local'],
      });
      expect(await handle.result()).toBe('local');
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(oneTaskSequence('MarkerRecorded'));
      const marker = only(history, 'MarkerRecorded').markerRecordedEventAttributes;
      expect(marker?.markerName).toBe('core_local_activity');
      expect(Number(marker?.workflowTaskCompletedEventId)).toBe(4);
    });
  });

  it('patched() writes a core_patch MarkerRecorded and upserts TemporalChangeVersion', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(patchedWorkflow, {
        taskQueue,
        workflowId: uid('patched'),
      });
      expect(await handle.result()).toBe('patched');
      const history = await checkedHistory(handle);
      // Core adds the TemporalChangeVersion upsert (flag UpsertSearchAttributeOnPatch) since the server
      // advertises sdk_metadata.
      expect(eventTypes(history)).toEqual(
        oneTaskSequence('MarkerRecorded', 'UpsertWorkflowSearchAttributes'),
      );
      expect(only(history, 'MarkerRecorded').markerRecordedEventAttributes?.markerName).toBe('core_patch');
      const upsert = only(
        history,
        'UpsertWorkflowSearchAttributes',
      ).upsertWorkflowSearchAttributesEventAttributes;
      expect(Object.keys(upsert?.searchAttributes?.indexedFields ?? {})).toEqual(['TemporalChangeVersion']);
      const description = await handle.describe();
      expect(
        description.typedSearchAttributes.get(
          defineSearchAttributeKey('TemporalChangeVersion', 'KEYWORD_LIST'),
        ),
      ).toEqual(['conformance-patch']);
    });
  });

  it('upserts a registered Keyword search attribute: UpsertWorkflowSearchAttributes, visible in describe()', async () => {
    await env.connection.operatorService.addSearchAttributes({
      namespace: 'default',
      searchAttributes: {
        [KEYWORD_ATTRIBUTE]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      },
    });
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(upsertKeyword, {
        taskQueue,
        workflowId: uid('upsert-sa'),
        args: [KEYWORD_ATTRIBUTE, 'conformance'],
      });
      expect(await handle.result()).toBe('conformance');
      const description = await handle.describe();
      expect(
        description.typedSearchAttributes.get(defineSearchAttributeKey(KEYWORD_ATTRIBUTE, 'KEYWORD')),
      ).toBe('conformance');
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(oneTaskSequence('UpsertWorkflowSearchAttributes'));
      const upsert = only(
        history,
        'UpsertWorkflowSearchAttributes',
      ).upsertWorkflowSearchAttributesEventAttributes;
      expect(Object.keys(upsert?.searchAttributes?.indexedFields ?? {})).toEqual([KEYWORD_ATTRIBUTE]);
    });
  });

  it('upserts the memo: WorkflowPropertiesModified, visible in describe()', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(upsertNote, {
        taskQueue,
        workflowId: uid('upsert-memo'),
        args: ['remember me'],
        memo: { initial: 'kept' },
      });
      expect(await handle.result()).toBe('remember me');
      expect((await handle.describe()).memo).toEqual({ initial: 'kept', note: 'remember me' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(oneTaskSequence('WorkflowPropertiesModified'));
      const modified = only(history, 'WorkflowPropertiesModified').workflowPropertiesModifiedEventAttributes;
      expect(Object.keys(modified?.upsertedMemo?.fields ?? {})).toEqual(['note']);
    });
  });

  it('an undefined search attribute fails the workflow task with BadSearchAttributes; the server keeps serving', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(upsertKeyword, {
        taskQueue,
        workflowId: uid('bad-sa'),
        args: ['NeverRegisteredAttribute', 'x'],
      });
      const failedTask = await waitForEvent(handle, 'WorkflowTaskFailed');
      const attrs = failedTask.workflowTaskFailedEventAttributes;
      expect(attrs?.cause).toBe(Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES);
      expect(attrs?.failure?.message).toContain('NeverRegisteredAttribute');
      expect((await handle.describe()).status.name).toBe('RUNNING');
      await handle.terminate('test over');

      const history = await checkedHistory(handle);
      const types = eventTypes(history);
      expect(types.slice(0, 3)).toEqual([
        'WorkflowExecutionStarted',
        'WorkflowTaskScheduled',
        'WorkflowTaskStarted',
      ]);
      expect(types).not.toContain('WorkflowTaskCompleted');
      expect(types).not.toContain('UpsertWorkflowSearchAttributes');
      expect(types.at(-1)).toBe('WorkflowExecutionTerminated');
      const causes = eventsOf(history, 'WorkflowTaskFailed').map(
        (e) => e.workflowTaskFailedEventAttributes?.cause,
      );
      // Terminating while a retry attempt is started fails that task with ForceCloseCommand, as the real server does.
      if (types.at(-2) === 'WorkflowTaskFailed') {
        expect(causes.pop()).toBe(Cause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND);
      }
      expect(causes.length).toBeGreaterThanOrEqual(1);
      expect(new Set(causes)).toEqual(new Set([Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES]));

      // The same server still runs workflows.
      const next = await env.client.workflow.start(patchedWorkflow, {
        taskQueue,
        workflowId: uid('after-bad-sa'),
      });
      expect(await next.result()).toBe('patched');
      await checkedHistory(next);
    });
  });
});
