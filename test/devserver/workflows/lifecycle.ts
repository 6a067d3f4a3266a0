/**
 * Workflows of the dev-server lifecycle and children conformance tests (workflows.test.ts, children.test.ts).
 * Activities are implemented by the tests themselves (they share state with the test process).
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
  type ParentClosePolicy,
} from '@temporalio/workflow';
import {
  CancelledFailure,
  ChildWorkflowFailure,
  TerminatedFailure,
  TimeoutFailure,
  WorkflowExecutionAlreadyStartedError,
} from '@temporalio/common';

export interface LifecycleActivities {
  /** The first call for a key blocks until the test releases the key; later calls return at once. Returns the call number. */
  gate(key: string): Promise<number>;
  /** Heartbeats until it is cancelled. */
  waitForCancel(key: string): Promise<void>;
}

const { gate } = proxyLocalActivities<LifecycleActivities>({ startToCloseTimeout: '1 minute' });
const { waitForCancel } = proxyActivities<LifecycleActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '10 seconds',
});

export const noteSignal = defineSignal<[string]>('note');
export const finishSignal = defineSignal('finish');
export const approveSignal = defineSignal('approve');
export const notesQuery = defineQuery<string[]>('notes');
export const boomQuery = defineQuery<string>('boom');

export function echo(value: string): Promise<string> {
  return Promise.resolve(value);
}

export async function sleepFor(duration: string): Promise<string> {
  await sleep(duration);
  return `slept ${duration}`;
}

/** Collects `note` signals until `finish`; returns the notes. */
export async function collectNotes(): Promise<string[]> {
  const notes: string[] = [];
  let finished = false;
  setHandler(noteSignal, (note) => void notes.push(note));
  setHandler(finishSignal, () => void (finished = true));
  setHandler(notesQuery, () => notes);
  setHandler(boomQuery, () => {
    throw new Error('boom from the query handler');
  });
  await condition(() => finished);
  return notes;
}

export function failWithApplicationFailure(message: string): Promise<never> {
  return Promise.reject(ApplicationFailure.create({ type: 'LifecycleError', message, nonRetryable: true }));
}

/**
 * Throws a plain Error (a workflow *task* failure, not a workflow failure) in its first workflow task. The
 * retried task sees a longer history (WorkflowTaskFailed and the new task's events) and succeeds.
 */
export function failFirstWorkflowTask(): Promise<string> {
  const { historyLength } = workflowInfo();
  if (historyLength <= 3) return Promise.reject(new Error('plain error in the first workflow task'));
  return Promise.resolve(`succeeded with history length ${historyLength}`);
}

/** Fails every workflow task with a plain Error (the server must time out the silent retries). */
export function alwaysFailsWorkflowTask(): Promise<never> {
  return Promise.reject(new Error('poison workflow task'));
}

/** Runs the gate local activity (the workflow task stays started while it blocks). */
export async function gated(key: string): Promise<number> {
  return await gate(key);
}

/** Blocks in its first task on the gate, then waits for a note. */
export async function gateThenWaitForNote(key: string): Promise<string[]> {
  const notes: string[] = [];
  setHandler(noteSignal, (note) => void notes.push(note));
  setHandler(notesQuery, () => notes);
  await gate(key);
  await condition(() => notes.length > 0);
  return notes;
}

/** Blocks in its first task on the gate, then returns the notes it has seen (without waiting for any). */
export async function gateThenReturnNotes(key: string): Promise<string[]> {
  const notes: string[] = [];
  setHandler(noteSignal, (note) => void notes.push(note));
  await gate(key);
  return notes;
}

/**
 * Sleeps a day; when cancelled, runs the gate as non-cancellable cleanup and completes with the notes seen
 * (the shape of sdk-go's unhandled_cmd_timer_cancel history).
 */
export async function cleanupOnCancel(key: string): Promise<string[]> {
  const notes: string[] = [];
  setHandler(noteSignal, (note) => void notes.push(note));
  try {
    await sleep('1 day');
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(() => gate(key));
  }
  return notes;
}

/** Waits on an activity and a timer at once (the shape of sdk-java's cancellationScopeDeterminism history). */
export async function activityAndTimer(key: string): Promise<void> {
  await Promise.all([waitForCancel(key), sleep('5 minutes')]);
}

/** Continues as new `remaining` times; returns the run ids of the whole chain. */
export async function continueAsNewChain(remaining: number, runIds: string[]): Promise<string[]> {
  const trail = [...runIds, workflowInfo().runId];
  if (remaining > 0) await continueAsNew<typeof continueAsNewChain>(remaining - 1, trail);
  return trail;
}

// ---------------------------------------------------------------------------------------------------------
// Children and external workflows
// ---------------------------------------------------------------------------------------------------------

/** Child: waits for `approve`, then (after a minute, so that the parent's events are in a fixed order) greets. */
export async function childAwaitingApproval(name: string): Promise<string> {
  let approved = false;
  setHandler(approveSignal, () => void (approved = true));
  await condition(() => approved);
  await sleep('1 minute');
  return `Hello ${name}`;
}

/** The shape of sdk-typescript's signal_workflow_1_13_1 history: child, timer, signal to the child. */
export async function parentApprovesChild(name: string): Promise<string> {
  const child = await startChild(childAwaitingApproval, {
    args: [name],
    workflowId: `${workflowInfo().workflowId}-child`,
  });
  const timer = sleep('1 hour');
  await child.signal(approveSignal);
  const greeting = await child.result();
  await timer;
  return greeting;
}

export async function childFailsLater(message: string): Promise<never> {
  await sleep('1 minute');
  throw ApplicationFailure.create({ type: 'ChildError', message, nonRetryable: true });
}

export async function parentOfFailingChild(message: string): Promise<string> {
  return await executeChild(childFailsLater, {
    args: [message],
    workflowId: `${workflowInfo().workflowId}-child`,
  });
}

export async function parentStartsChildWithId(childId: string): Promise<string> {
  try {
    await startChild(collectNotes, { workflowId: childId });
    return 'started';
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return `already started: ${err.workflowId}`;
    throw err;
  }
}

/** Starts a child with the given parent close policy and completes at once, returning the child's run id. */
export async function parentWithClosePolicy(
  policy: ParentClosePolicy,
  childId: string,
  childType: 'collectNotes' | 'sleepFor',
): Promise<string> {
  const child =
    childType === 'collectNotes'
      ? await startChild(collectNotes, { workflowId: childId, parentClosePolicy: policy })
      : await startChild(sleepFor, { workflowId: childId, parentClosePolicy: policy, args: ['1 day'] });
  return child.firstExecutionRunId;
}

/** Waits forever; when cancelled, cleans up for a minute (so that the parent's events are in a fixed order). */
export async function childCleansUpOnCancel(): Promise<never> {
  try {
    await condition(() => false);
  } catch (err) {
    if (isCancellation(err)) await CancellationScope.nonCancellable(() => sleep('1 minute'));
    throw err;
  }
  throw new Error('unreachable');
}

/** Starts a child, then cancels it through a cancellation scope. */
export async function parentCancelsChild(): Promise<string> {
  const scope = new CancellationScope();
  const child = await scope.run(() =>
    startChild(childCleansUpOnCancel, { workflowId: `${workflowInfo().workflowId}-child` }),
  );
  scope.cancel();
  try {
    await child.result();
    return 'child completed';
  } catch (err) {
    if (err instanceof ChildWorkflowFailure && err.cause instanceof CancelledFailure)
      return 'child cancelled';
    throw err;
  }
}

/** A child that continues as new once; the parent returns the child's run ids. */
export async function parentOfContinuingChild(): Promise<string[]> {
  return await executeChild(continueAsNewChain, {
    args: [1, []],
    workflowId: `${workflowInfo().workflowId}-child`,
  });
}

/** Runs a child to its end and describes how it ended. */
export async function parentReportsChildOutcome(childType: 'collectNotes' | 'sleepFor'): Promise<string> {
  const workflowId = `${workflowInfo().workflowId}-child`;
  try {
    const result =
      childType === 'collectNotes'
        ? await executeChild(collectNotes, { workflowId })
        : await executeChild(sleepFor, { workflowId, args: ['1 day'], workflowRunTimeout: '1 hour' });
    return `completed: ${JSON.stringify(result)}`;
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailure)) throw err;
    if (err.cause instanceof TimeoutFailure) return 'child timed out';
    if (err.cause instanceof TerminatedFailure) return `child terminated: ${err.cause.message}`;
    return `child failed: ${err.cause?.message}`;
  }
}

export async function signalExternal(workflowId: string): Promise<string> {
  try {
    await getExternalWorkflowHandle(workflowId).signal(noteSignal, 'from a workflow');
    return 'signaled';
  } catch (err) {
    return `signal failed: ${(err as Error).message}`;
  }
}

export async function cancelExternal(workflowId: string): Promise<string> {
  await getExternalWorkflowHandle(workflowId).cancel();
  return 'cancel requested';
}
