/**
 * The mutable state of one workflow run, and the state machines that write its history the way the real
 * Temporal history service does:
 *
 * - events that arrive while a workflow task is started are buffered, invisible to everyone, and written
 *   after the task's completion and its command events (or its failure / time-out);
 * - activity attempts that will be retried write no events; `ActivityTaskStarted` is written at close,
 *   immediately before the closing event, with the final attempt;
 * - a completion that closes the workflow while events are buffered is refused with `UnhandledCommand`;
 * - every outstanding piece of work holds a lock on the virtual clock.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { RpcError, invalidArgument, notFound } from './grpc-transport';
import { HistoryLog, makeEvent, type HistoryEvent } from './history-log';
import type { Task, PollerInfo } from './matching';
import { enums, num, long, msFromDuration, durationFromMs, timestampFromMs, type temporal } from './proto';
import { encodeTaskToken } from './task-token';
import type { ClockLock, ClockTimer } from './virtual-clock';
import type { Engine, NamespaceState } from './engine';

const ET = enums.EventType;
const CT = enums.CommandType;
const Cause = enums.WorkflowTaskFailedCause;
const RetryState = enums.RetryState;
const TimeoutType = enums.TimeoutType;
export const Status = enums.WorkflowExecutionStatus;

type IPayloads = temporal.api.common.v1.IPayloads;
type IPayload = temporal.api.common.v1.IPayload;
type IFailure = temporal.api.failure.v1.IFailure;
type IHeader = temporal.api.common.v1.IHeader;
type IRetryPolicy = temporal.api.common.v1.IRetryPolicy;
type ICommand = temporal.api.command.v1.ICommand;
type IWorkflowQuery = temporal.api.query.v1.IWorkflowQuery;
type IWorkflowExecution = temporal.api.common.v1.IWorkflowExecution;
export type PollWorkflowTaskResponse = Buffer;
export type PollActivityTaskResponse = temporal.api.workflowservice.v1.IPollActivityTaskQueueResponse;

export const DEFAULT_WORKFLOW_TASK_TIMEOUT_MS = 10_000;
const MAX_WORKFLOW_TASK_TIMEOUT_MS = 120_000;

/** A retry policy with every default filled in, as the real server normalises it. */
export interface NormalizedRetryPolicy {
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalMs: number;
  maximumAttempts: number;
  nonRetryableErrorTypes: string[];
}

export function normalizeRetryPolicy(
  policy: IRetryPolicy | null | undefined,
  what: string,
): NormalizedRetryPolicy {
  const initialIntervalMs = msFromDuration(policy?.initialInterval) || 1000;
  const backoffCoefficient = policy?.backoffCoefficient || 2;
  const maximumIntervalMs = msFromDuration(policy?.maximumInterval) || 100 * initialIntervalMs;
  const maximumAttempts = policy?.maximumAttempts ?? 0;
  if (backoffCoefficient < 1)
    throw invalidArgument(`${what}.retryPolicy.backoffCoefficient cannot be less than 1`);
  if (maximumIntervalMs < initialIntervalMs)
    throw invalidArgument(`${what}.retryPolicy.maximumInterval cannot be less than its initialInterval`);
  if (maximumAttempts < 0) throw invalidArgument(`${what}.retryPolicy.maximumAttempts cannot be negative`);
  return {
    initialIntervalMs,
    backoffCoefficient,
    maximumIntervalMs,
    maximumAttempts,
    nonRetryableErrorTypes: [...(policy?.nonRetryableErrorTypes ?? [])],
  };
}

export function retryPolicyToProto(p: NormalizedRetryPolicy): IRetryPolicy {
  return {
    initialInterval: durationFromMs(p.initialIntervalMs),
    backoffCoefficient: p.backoffCoefficient,
    maximumInterval: durationFromMs(p.maximumIntervalMs),
    maximumAttempts: p.maximumAttempts,
    nonRetryableErrorTypes: p.nonRetryableErrorTypes,
  };
}

/** What a query resolves to. */
export type QueryOutcome =
  | { kind: 'answered'; result: IPayloads | null | undefined }
  | { kind: 'failed'; message: string; failure?: IFailure | null }
  | { kind: 'gone'; message: string };

export interface PendingQuery {
  id: string;
  query: IWorkflowQuery;
  resolve: (outcome: QueryOutcome) => void;
  lock?: ClockLock;
  done: boolean;
}

interface WorkflowTaskState {
  state: 'scheduled' | 'started';
  scheduledEventId: number;
  startedEventId: number;
  attempt: number;
  scheduledTime: number;
  startedTime: number;
  lock: ClockLock;
  timeout?: ClockTimer;
  /** Queries delivered with this task (its `queries` map). */
  queries: PendingQuery[];
}

export interface ActivityState {
  scheduledEventId: number;
  activityId: string;
  activityType: string;
  taskQueue: string;
  input: IPayloads | null | undefined;
  header: IHeader | null | undefined;
  scheduleToCloseMs: number;
  scheduleToStartMs: number;
  startToCloseMs: number;
  heartbeatMs: number;
  retryPolicy: NormalizedRetryPolicy;
  scheduledTime: number;
  attemptScheduledTime: number;
  attempt: number;
  state: 'scheduled' | 'started' | 'backoff';
  startedTime: number;
  identity: string;
  requestId: string;
  heartbeatDetails: IPayloads | null | undefined;
  lastHeartbeatTime: number;
  lastFailure: IFailure | null | undefined;
  cancelRequestedEventId: number;
  lock?: ClockLock;
  timers: Partial<
    Record<'scheduleToClose' | 'scheduleToStart' | 'startToClose' | 'heartbeat' | 'retry', ClockTimer>
  >;
}

export interface ChildState {
  initiatedEventId: number;
  namespace: string;
  workflowId: string;
  workflowType: string;
  runId: string;
  startedEventId: number;
  parentClosePolicy: number;
}

export interface ParentInfo {
  namespace: string;
  workflowId: string;
  runId: string;
  initiatedEventId: number;
}

/** The parts of a start request (or continue-as-new command) a run is created from. */
export interface RunInit {
  workflowId: string;
  runId: string;
  firstExecutionRunId: string;
  workflowType: string;
  taskQueue: string;
  input: IPayloads | null | undefined;
  header: IHeader | null | undefined;
  memo: Record<string, IPayload>;
  searchAttributes: Record<string, IPayload>;
  runTimeoutMs: number;
  executionTimeoutMs: number;
  executionExpirationTime: number;
  workflowTaskTimeoutMs: number;
  retryPolicy: IRetryPolicy | null | undefined;
  cronSchedule: string;
  identity: string;
  requestId: string;
  startDelayMs: number;
  parent?: ParentInfo;
  root: IWorkflowExecution;
  continuedExecutionRunId?: string;
  initiator?: number;
  lastCompletionResult?: IPayloads | null;
  continuedFailure?: IFailure | null;
  attempt: number;
  userMetadata?: temporal.api.sdk.v1.IUserMetadata | null;
  priority?: temporal.api.common.v1.IPriority | null;
}

type EventBuilder = () => HistoryEvent;

function payloadMap(map: Record<string, IPayload> | null | undefined): Record<string, IPayload> {
  return { ...(map ?? {}) };
}

/** A payload that removes a search attribute: nil data or `null` JSON. */
function isNullPayload(p: IPayload | null | undefined): boolean {
  if (!p?.data || p.data.length === 0) return true;
  return Buffer.from(p.data).toString('utf8') === 'null';
}

export class Execution {
  readonly workflowId: string;
  readonly runId: string;
  readonly firstExecutionRunId: string;
  readonly workflowType: string;
  readonly taskQueue: string;
  readonly history = new HistoryLog();
  readonly init: RunInit;
  status: number = Status.WORKFLOW_EXECUTION_STATUS_RUNNING;
  readonly startTime: number;
  executionTime: number;
  closeTime = 0;
  memo: Record<string, IPayload>;
  searchAttributes: Record<string, IPayload>;
  readonly requestIds = new Set<string>();
  readonly signalRequestIds = new Set<string>();
  readonly cancelRequestIds = new Set<string>();
  cancelRequested = false;
  /** The next run of this chain (continue-as-new), once this one closed into it. */
  nextRunId = '';
  stateTransitions = 0;

  private readonly buffered: EventBuilder[] = [];
  private wft: WorkflowTaskState | null = null;
  private wftAttempt = 1;
  private lastCompletedStartedEventId = 0;
  private startDelayPending: boolean;
  private readonly pendingQueries: PendingQuery[] = [];
  readonly activities = new Map<number, ActivityState>();
  private readonly activityIds = new Map<string, number>();
  private readonly timers = new Map<string, { startedEventId: number; timer: ClockTimer }>();
  readonly children = new Map<number, ChildState>();
  private readonly runTimers: ClockTimer[] = [];
  private afterCommit: (() => void)[] = [];
  /** Activities of the completing workflow task that its worker asked to run at once (eager dispatch). */
  private eagerActivities: ActivityState[] = [];

  constructor(
    private readonly engine: Engine,
    readonly ns: NamespaceState,
    init: RunInit,
  ) {
    this.init = init;
    this.workflowId = init.workflowId;
    this.runId = init.runId;
    this.firstExecutionRunId = init.firstExecutionRunId;
    this.workflowType = init.workflowType;
    this.taskQueue = init.taskQueue;
    this.memo = payloadMap(init.memo);
    this.searchAttributes = payloadMap(init.searchAttributes);
    this.startTime = engine.clock.now();
    this.executionTime = this.startTime + init.startDelayMs;
    this.startDelayPending = init.startDelayMs > 0;
    this.requestIds.add(init.requestId);
  }

  get isRunning(): boolean {
    return this.status === Status.WORKFLOW_EXECUTION_STATUS_RUNNING;
  }

  /** No workflow task was ever scheduled (still in the start delay): a worker cannot answer a query yet. */
  get hadNoWorkflowTask(): boolean {
    return this.startDelayPending;
  }

  get execution(): IWorkflowExecution {
    return { workflowId: this.workflowId, runId: this.runId };
  }

  get workflowTaskTimeoutMs(): number {
    return this.init.workflowTaskTimeoutMs;
  }

  private now(): number {
    return this.engine.clock.now();
  }

  // ---------------------------------------------------------------------------------------------------
  // Writing events
  // ---------------------------------------------------------------------------------------------------

  private append(eventType: number, attributes: object): number {
    this.stateTransitions++;
    return this.history.append(makeEvent(eventType, attributes, this.now()));
  }

  /**
   * Writes a non-command event: buffered while a workflow task is started, appended otherwise. The builder
   * runs when the event is written, so cross-references to earlier buffered events resolve correctly.
   */
  private addEvent(build: EventBuilder): void {
    if (this.wft?.state === 'started') {
      this.buffered.push(build);
    } else {
      this.stateTransitions++;
      this.history.append(build());
    }
  }

  private event(eventType: number, attributes: () => object): EventBuilder {
    const time = this.now();
    return () => makeEvent(eventType, attributes(), time);
  }

  /** Writes a non-command event and makes sure a workflow task will see it. */
  private addEventAndSchedule(build: EventBuilder): void {
    this.addEvent(build);
    this.scheduleWorkflowTask();
  }

  private flushBuffered(): boolean {
    if (this.buffered.length === 0) return false;
    const builders = this.buffered.splice(0);
    for (const build of builders) {
      this.stateTransitions++;
      this.history.append(build());
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------------------

  /** Writes WorkflowExecutionStarted (and an optional signal), then the first workflow task. */
  start(signal?: {
    name: string;
    input: IPayloads | null | undefined;
    header: IHeader | null | undefined;
    identity: string;
  }) {
    const i = this.init;
    this.append(ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, {
      workflowType: { name: i.workflowType },
      parentWorkflowNamespace: i.parent?.namespace ?? '',
      parentWorkflowNamespaceId: i.parent ? this.engine.namespaceId(i.parent.namespace) : '',
      parentWorkflowExecution: i.parent ? { workflowId: i.parent.workflowId, runId: i.parent.runId } : null,
      parentInitiatedEventId: i.parent?.initiatedEventId ?? 0,
      taskQueue: { name: i.taskQueue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      input: i.input,
      workflowExecutionTimeout: i.executionTimeoutMs ? durationFromMs(i.executionTimeoutMs) : null,
      workflowRunTimeout: i.runTimeoutMs ? durationFromMs(i.runTimeoutMs) : null,
      workflowTaskTimeout: durationFromMs(i.workflowTaskTimeoutMs),
      continuedExecutionRunId: i.continuedExecutionRunId ?? '',
      initiator: i.initiator ?? 0,
      continuedFailure: i.continuedFailure ?? null,
      lastCompletionResult: i.lastCompletionResult ?? null,
      originalExecutionRunId: this.runId,
      identity: i.identity,
      firstExecutionRunId: this.firstExecutionRunId,
      retryPolicy: i.retryPolicy ?? null,
      attempt: i.attempt,
      workflowExecutionExpirationTime: i.executionExpirationTime
        ? timestampFromMs(i.executionExpirationTime)
        : null,
      cronSchedule: i.cronSchedule,
      firstWorkflowTaskBackoff: i.startDelayMs ? durationFromMs(i.startDelayMs) : null,
      memo: Object.keys(this.memo).length ? { fields: this.memo } : null,
      searchAttributes: Object.keys(this.searchAttributes).length
        ? { indexedFields: this.searchAttributes }
        : null,
      header: i.header ?? null,
      workflowId: this.workflowId,
      rootWorkflowExecution: i.root,
      priority: i.priority ?? null,
    });
    if (signal) this.signal(signal.name, signal.input, signal.header, signal.identity, '');
    if (this.startDelayPending) {
      this.runTimers.push(this.engine.clock.after(i.startDelayMs, () => this.skipStartDelay()));
    } else {
      this.scheduleWorkflowTask();
    }
    const runDeadline = this.runDeadline();
    if (runDeadline) this.runTimers.push(this.engine.clock.schedule(runDeadline, () => this.timeOut()));
  }

  /** Ends the start delay: at its timer, or early on SignalWithStart, as the real server does. */
  skipStartDelay(): void {
    if (!this.startDelayPending) return;
    this.startDelayPending = false;
    this.scheduleWorkflowTask();
  }

  private runDeadline(): number {
    const candidates: number[] = [];
    if (this.init.runTimeoutMs)
      candidates.push(this.startTime + this.init.startDelayMs + this.init.runTimeoutMs);
    if (this.init.executionExpirationTime) candidates.push(this.init.executionExpirationTime);
    return candidates.length ? Math.min(...candidates) : 0;
  }

  // ---------------------------------------------------------------------------------------------------
  // Workflow tasks
  // ---------------------------------------------------------------------------------------------------

  private scheduleWorkflowTask(): void {
    if (!this.isRunning || this.wft || this.startDelayPending) return;
    const attempt = this.wftAttempt;
    const scheduledEventId = this.append(ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, {
      taskQueue: { name: this.taskQueue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      startToCloseTimeout: durationFromMs(this.workflowTaskTimeoutMs),
      attempt,
    });
    const wft: WorkflowTaskState = {
      state: 'scheduled',
      scheduledEventId,
      startedEventId: 0,
      attempt,
      scheduledTime: this.now(),
      startedTime: 0,
      lock: this.engine.clock.hold('workflow task'),
      queries: [],
    };
    this.wft = wft;
    const task: Task<PollWorkflowTaskResponse> = {
      dispatch: (poller) => this.startWorkflowTask(wft, poller),
    };
    this.engine.matching.addTask(this.ns.name, this.taskQueue, 'workflow', task);
  }

  private startWorkflowTask(
    wft: WorkflowTaskState,
    poller: PollerInfo,
  ): PollWorkflowTaskResponse | undefined {
    if (this.wft !== wft || wft.state !== 'scheduled' || !this.isRunning) return undefined;
    const requestId = randomUUID();
    wft.startedEventId = this.append(ET.EVENT_TYPE_WORKFLOW_TASK_STARTED, {
      scheduledEventId: wft.scheduledEventId,
      identity: poller.identity,
      requestId,
      historySizeBytes: this.history.sizeBytes,
      suggestContinueAsNew: false,
    });
    wft.state = 'started';
    wft.startedTime = this.now();
    wft.timeout = this.engine.clock.after(this.workflowTaskTimeoutMs, () => this.timeOutWorkflowTask(wft));
    wft.queries = this.pendingQueries.splice(0);
    const queries: Record<string, IWorkflowQuery> = {};
    for (const q of wft.queries) queries[q.id] = q.query;
    return this.engine.encodeWorkflowTask(this, {
      taskToken: encodeTaskToken({
        k: 'w',
        ns: this.ns.name,
        wid: this.workflowId,
        rid: this.runId,
        s: wft.scheduledEventId,
        a: wft.attempt,
      }),
      workflowExecution: this.execution,
      workflowType: { name: this.workflowType },
      previousStartedEventId: long(this.lastCompletedStartedEventId),
      startedEventId: long(wft.startedEventId),
      attempt: wft.attempt,
      backlogCountHint: long(0),
      workflowExecutionTaskQueue: { name: this.taskQueue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      scheduledTime: timestampFromMs(wft.scheduledTime),
      startedTime: timestampFromMs(wft.startedTime),
      queries,
    });
  }

  private currentStartedTask(scheduledEventId: number, attempt: number): WorkflowTaskState {
    const wft = this.wft;
    if (!this.isRunning) throw notFound('workflow execution already completed');
    if (
      !wft ||
      wft.state !== 'started' ||
      wft.scheduledEventId !== scheduledEventId ||
      wft.attempt !== attempt
    ) {
      throw notFound('workflow task not found: it was already completed, failed or timed out');
    }
    return wft;
  }

  private endWorkflowTask(wft: WorkflowTaskState): void {
    wft.timeout?.cancel();
    wft.lock.release();
    if (this.wft === wft) this.wft = null;
  }

  /** Writes WorkflowTaskFailed for the started task, flushes buffered events and schedules the next attempt. */
  private failStartedWorkflowTask(
    wft: WorkflowTaskState,
    cause: number,
    failure: IFailure | null | undefined,
    identity: string,
    nextAttempt: number,
  ): void {
    this.endWorkflowTask(wft);
    this.append(ET.EVENT_TYPE_WORKFLOW_TASK_FAILED, {
      scheduledEventId: wft.scheduledEventId,
      startedEventId: wft.startedEventId,
      cause,
      failure: failure ?? null,
      identity,
    });
    this.flushBuffered();
    this.wftAttempt = nextAttempt;
    this.requeueQueries(wft.queries);
    this.scheduleWorkflowTask();
  }

  private timeOutWorkflowTask(wft: WorkflowTaskState): void {
    if (this.wft !== wft || wft.state !== 'started' || !this.isRunning) return;
    this.endWorkflowTask(wft);
    this.append(ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, {
      scheduledEventId: wft.scheduledEventId,
      startedEventId: wft.startedEventId,
      timeoutType: TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
    });
    this.flushBuffered();
    this.wftAttempt = wft.attempt + 1;
    this.requeueQueries(wft.queries);
    this.scheduleWorkflowTask();
  }

  /** RespondWorkflowTaskFailed. */
  failWorkflowTask(
    scheduledEventId: number,
    attempt: number,
    req: temporal.api.workflowservice.v1.IRespondWorkflowTaskFailedRequest,
  ): void {
    const wft = this.currentStartedTask(scheduledEventId, attempt);
    this.failStartedWorkflowTask(
      wft,
      req.cause ?? Cause.WORKFLOW_TASK_FAILED_CAUSE_UNSPECIFIED,
      req.failure,
      req.identity ?? '',
      wft.attempt + 1,
    );
  }

  /**
   * RespondWorkflowTaskCompleted. Throws RpcError for stale tasks, unhandled commands and bad commands.
   * Returns the activity tasks handed to the completing worker at once (eager dispatch): those it asked
   * for with `requestEagerExecution`, when the server allows it, started under the worker's identity.
   */
  completeWorkflowTask(
    scheduledEventId: number,
    attempt: number,
    req: temporal.api.workflowservice.v1.IRespondWorkflowTaskCompletedRequest,
  ): PollActivityTaskResponse[] {
    const wft = this.currentStartedTask(scheduledEventId, attempt);
    const commands = req.commands ?? [];
    const identity = req.identity ?? '';
    this.eagerActivities = [];
    const closes = commands.some((c) => isCloseCommand(c.commandType ?? 0));
    if (closes && this.buffered.length > 0) {
      this.failStartedWorkflowTask(
        wft,
        Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
        { message: 'UnhandledCommand: new events arrived while the workflow task ran', source: 'Server' },
        identity,
        1,
      );
      throw invalidArgument('UnhandledCommand');
    }
    const problem = this.validateCommands(commands);
    if (problem) {
      this.failStartedWorkflowTask(
        wft,
        problem.cause,
        { message: problem.message, source: 'Server' },
        identity,
        wft.attempt + 1,
      );
      throw invalidArgument(problem.message);
    }

    this.endWorkflowTask(wft);
    const completedId = this.append(ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, {
      scheduledEventId: wft.scheduledEventId,
      startedEventId: wft.startedEventId,
      identity,
      binaryChecksum: req.binaryChecksum ?? '',
      workerVersion: req.workerVersionStamp ?? null,
      sdkMetadata: req.sdkMetadata ?? null,
      meteringMetadata: req.meteringMetadata ?? null,
      deployment: req.deployment ?? null,
    });
    this.lastCompletedStartedEventId = wft.startedEventId;
    this.wftAttempt = 1;
    let needWorkflowTask = !!req.forceCreateNewWorkflowTask;
    for (const command of commands) {
      if (this.applyCommand(command, completedId, identity)) needWorkflowTask = true;
      if (!this.isRunning) break;
    }
    this.answerQueries(wft.queries, req.queryResults ?? {});
    const eager = this.eagerActivities;
    this.eagerActivities = [];
    const activityTasks: PollActivityTaskResponse[] = [];
    if (this.isRunning) {
      if (this.flushBuffered()) needWorkflowTask = true;
      const effects = this.afterCommit.splice(0);
      for (const effect of effects) effect();
      // As the real server does after all commands: an activity cancelled in the same task is skipped.
      for (const activity of eager) {
        const task = this.startActivity(activity, activity.attempt, { identity });
        if (task) activityTasks.push(task);
      }
      if (needWorkflowTask) this.scheduleWorkflowTask();
      this.dispatchQueriesAfterTask();
    } else {
      this.afterCommit.splice(0);
      for (const q of this.pendingQueries.splice(0)) this.dispatchLegacyQuery(q);
    }
    return activityTasks;
  }

  // ---------------------------------------------------------------------------------------------------
  // Commands
  // ---------------------------------------------------------------------------------------------------

  private validateCommands(commands: ICommand[]): { cause: number; message: string } | undefined {
    const newTimers = new Set<string>();
    const newActivities = new Set<string>();
    for (const c of commands) {
      switch (c.commandType) {
        case CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: {
          const a = c.scheduleActivityTaskCommandAttributes;
          const bad = (message: string) => ({
            cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
            message,
          });
          if (!a) return bad('ScheduleActivityTaskCommandAttributes is not set on the command');
          if (!a.activityId) return bad('ActivityId is not set on ScheduleActivityTaskCommand');
          if (!a.activityType?.name) return bad('ActivityType is not set on ScheduleActivityTaskCommand');
          if (this.activityIds.has(a.activityId) || newActivities.has(a.activityId))
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID,
              message: `Activity ID ${a.activityId} is already in use`,
            };
          newActivities.add(a.activityId);
          if (!msFromDuration(a.startToCloseTimeout) && !msFromDuration(a.scheduleToCloseTimeout))
            return bad(
              'A valid StartToClose or ScheduleToCloseTimeout is not set on ScheduleActivityTaskCommand',
            );
          try {
            normalizeRetryPolicy(a.retryPolicy, 'ScheduleActivityTaskCommand');
          } catch (err) {
            return bad((err as Error).message);
          }
          break;
        }
        case CT.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK: {
          const id = num(c.requestCancelActivityTaskCommandAttributes?.scheduledEventId);
          if (!this.activities.has(id))
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
              message: `no pending activity with scheduledEventId ${id}`,
            };
          break;
        }
        case CT.COMMAND_TYPE_START_TIMER: {
          const a = c.startTimerCommandAttributes;
          if (!a?.timerId)
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
              message: 'TimerId is not set on StartTimerCommand',
            };
          if (this.timers.has(a.timerId) || newTimers.has(a.timerId))
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID,
              message: `Timer ID ${a.timerId} is already in use`,
            };
          newTimers.add(a.timerId);
          if (msFromDuration(a.startToFireTimeout) <= 0)
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
              message: 'StartToFireTimeout must be positive on StartTimerCommand',
            };
          break;
        }
        case CT.COMMAND_TYPE_CANCEL_TIMER: {
          const id = c.cancelTimerCommandAttributes?.timerId ?? '';
          if (!this.timers.has(id) && !newTimers.has(id))
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
              message: `no pending timer with id ${id}`,
            };
          break;
        }
        case CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: {
          const a = c.startChildWorkflowExecutionCommandAttributes;
          const bad = (message: string) => ({
            cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES,
            message,
          });
          if (!a?.workflowId) return bad('WorkflowId is not set on StartChildWorkflowExecutionCommand');
          if (!a.workflowType?.name)
            return bad('WorkflowType is not set on StartChildWorkflowExecutionCommand');
          if (a.namespace && !this.engine.hasNamespace(a.namespace))
            return bad(`Namespace ${a.namespace} is not found`);
          break;
        }
        case CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: {
          const a = c.signalExternalWorkflowExecutionCommandAttributes;
          if (!a?.execution?.workflowId || !a.signalName)
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES,
              message: 'WorkflowId and SignalName must be set on SignalExternalWorkflowExecutionCommand',
            };
          break;
        }
        case CT.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: {
          const a = c.requestCancelExternalWorkflowExecutionCommandAttributes;
          if (!a?.workflowId)
            return {
              cause:
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES,
              message: 'WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand',
            };
          break;
        }
        case CT.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
          const fields =
            c.upsertWorkflowSearchAttributesCommandAttributes?.searchAttributes?.indexedFields ?? {};
          const problem = this.engine.checkSearchAttributes(this.ns, fields);
          if (problem)
            return { cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES, message: problem };
          break;
        }
        case CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: {
          const a = c.continueAsNewWorkflowExecutionCommandAttributes;
          if (!a)
            return {
              cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES,
              message: 'ContinueAsNew attributes are not set',
            };
          const problem = this.engine.checkSearchAttributes(this.ns, a.searchAttributes?.indexedFields ?? {});
          if (problem)
            return { cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES, message: problem };
          break;
        }
        case CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION:
        case CT.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION:
        case CT.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION:
        case CT.COMMAND_TYPE_RECORD_MARKER:
        case CT.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES:
          break;
        default:
          return {
            cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_FEATURE_DISABLED,
            message: `command ${CT[c.commandType ?? 0] ?? c.commandType} is not supported by this dev server`,
          };
      }
    }
    return undefined;
  }

  /** Applies one command; returns true when it requires a new workflow task. */
  private applyCommand(c: ICommand, completedId: number, identity: string): boolean {
    switch (c.commandType) {
      case CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK:
        this.scheduleActivity(c.scheduleActivityTaskCommandAttributes!, completedId);
        return false;
      case CT.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK:
        return this.requestCancelActivity(
          num(c.requestCancelActivityTaskCommandAttributes!.scheduledEventId),
          completedId,
        );
      case CT.COMMAND_TYPE_START_TIMER:
        this.startTimer(c.startTimerCommandAttributes!, completedId);
        return false;
      case CT.COMMAND_TYPE_CANCEL_TIMER: {
        const timerId = c.cancelTimerCommandAttributes!.timerId!;
        const timer = this.timers.get(timerId)!;
        timer.timer.cancel();
        this.timers.delete(timerId);
        this.append(ET.EVENT_TYPE_TIMER_CANCELED, {
          timerId,
          startedEventId: timer.startedEventId,
          workflowTaskCompletedEventId: completedId,
          identity,
        });
        return false;
      }
      case CT.COMMAND_TYPE_RECORD_MARKER: {
        const a = c.recordMarkerCommandAttributes ?? {};
        this.append(ET.EVENT_TYPE_MARKER_RECORDED, {
          markerName: a.markerName ?? '',
          details: a.details ?? {},
          workflowTaskCompletedEventId: completedId,
          header: a.header ?? null,
          failure: a.failure ?? null,
        });
        return false;
      }
      case CT.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
        const fields =
          c.upsertWorkflowSearchAttributesCommandAttributes?.searchAttributes?.indexedFields ?? {};
        this.mergeSearchAttributes(fields);
        this.append(ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, {
          workflowTaskCompletedEventId: completedId,
          searchAttributes: { indexedFields: fields },
        });
        return false;
      }
      case CT.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES: {
        const fields = c.modifyWorkflowPropertiesCommandAttributes?.upsertedMemo?.fields ?? {};
        for (const [k, v] of Object.entries(fields)) {
          if (isNullPayload(v)) delete this.memo[k];
          else this.memo[k] = v;
        }
        this.append(ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED, {
          workflowTaskCompletedEventId: completedId,
          upsertedMemo: { fields },
        });
        return false;
      }
      case CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION:
        this.initiateChild(c.startChildWorkflowExecutionCommandAttributes!, completedId);
        return false;
      case CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION:
        this.initiateSignalExternal(c.signalExternalWorkflowExecutionCommandAttributes!, completedId);
        return false;
      case CT.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION:
        this.initiateCancelExternal(c.requestCancelExternalWorkflowExecutionCommandAttributes!, completedId);
        return false;
      case CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION: {
        const result = c.completeWorkflowExecutionCommandAttributes?.result ?? null;
        this.close(Status.WORKFLOW_EXECUTION_STATUS_COMPLETED, ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, {
          result,
          workflowTaskCompletedEventId: completedId,
        });
        return false;
      }
      case CT.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION: {
        const failure = c.failWorkflowExecutionCommandAttributes?.failure ?? null;
        this.close(Status.WORKFLOW_EXECUTION_STATUS_FAILED, ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, {
          failure,
          retryState: RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET,
          workflowTaskCompletedEventId: completedId,
        });
        return false;
      }
      case CT.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION: {
        const details = c.cancelWorkflowExecutionCommandAttributes?.details ?? null;
        this.close(Status.WORKFLOW_EXECUTION_STATUS_CANCELED, ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, {
          details,
          workflowTaskCompletedEventId: completedId,
        });
        return false;
      }
      case CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION:
        this.continueAsNew(c.continueAsNewWorkflowExecutionCommandAttributes!, completedId);
        return false;
      default:
        return false;
    }
  }

  private mergeSearchAttributes(fields: Record<string, IPayload>): void {
    for (const [k, v] of Object.entries(fields)) {
      if (isNullPayload(v)) delete this.searchAttributes[k];
      else this.searchAttributes[k] = v;
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Timers
  // ---------------------------------------------------------------------------------------------------

  private startTimer(a: temporal.api.command.v1.IStartTimerCommandAttributes, completedId: number): void {
    const timerId = a.timerId!;
    const startedEventId = this.append(ET.EVENT_TYPE_TIMER_STARTED, {
      timerId,
      startToFireTimeout: a.startToFireTimeout,
      workflowTaskCompletedEventId: completedId,
    });
    const timer = this.engine.clock.after(msFromDuration(a.startToFireTimeout), () => {
      if (!this.isRunning || this.timers.get(timerId)?.startedEventId !== startedEventId) return;
      this.timers.delete(timerId);
      this.addEventAndSchedule(this.event(ET.EVENT_TYPE_TIMER_FIRED, () => ({ timerId, startedEventId })));
    });
    this.timers.set(timerId, { startedEventId, timer });
  }

  // ---------------------------------------------------------------------------------------------------
  // Activities
  // ---------------------------------------------------------------------------------------------------

  private scheduleActivity(
    a: temporal.api.command.v1.IScheduleActivityTaskCommandAttributes,
    completedId: number,
  ): void {
    const runTimeoutMs = this.init.runTimeoutMs;
    let scheduleToCloseMs = msFromDuration(a.scheduleToCloseTimeout);
    if (scheduleToCloseMs <= 0) scheduleToCloseMs = runTimeoutMs;
    let startToCloseMs = msFromDuration(a.startToCloseTimeout);
    if (startToCloseMs <= 0) startToCloseMs = scheduleToCloseMs;
    let scheduleToStartMs = msFromDuration(a.scheduleToStartTimeout);
    if (scheduleToStartMs <= 0) scheduleToStartMs = scheduleToCloseMs;
    if (scheduleToCloseMs > 0) {
      scheduleToStartMs = Math.min(scheduleToStartMs || scheduleToCloseMs, scheduleToCloseMs);
      startToCloseMs = Math.min(startToCloseMs, scheduleToCloseMs);
    }
    let heartbeatMs = msFromDuration(a.heartbeatTimeout);
    if (startToCloseMs > 0 && heartbeatMs > startToCloseMs) heartbeatMs = startToCloseMs;
    const retryPolicy = normalizeRetryPolicy(a.retryPolicy, 'ScheduleActivityTaskCommand');
    const taskQueue = a.taskQueue?.name || this.taskQueue;
    const scheduledEventId = this.append(ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, {
      activityId: a.activityId,
      activityType: a.activityType,
      taskQueue: { name: taskQueue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      header: a.header ?? null,
      input: a.input ?? null,
      scheduleToCloseTimeout: durationFromMs(scheduleToCloseMs),
      scheduleToStartTimeout: durationFromMs(scheduleToStartMs),
      startToCloseTimeout: durationFromMs(startToCloseMs),
      heartbeatTimeout: durationFromMs(heartbeatMs),
      workflowTaskCompletedEventId: completedId,
      retryPolicy: retryPolicyToProto(retryPolicy),
      useWorkflowBuildId: a.useWorkflowBuildId ?? false,
      priority: a.priority ?? null,
    });
    const now = this.now();
    const activity: ActivityState = {
      scheduledEventId,
      activityId: a.activityId!,
      activityType: a.activityType!.name!,
      taskQueue,
      input: a.input,
      header: a.header,
      scheduleToCloseMs,
      scheduleToStartMs,
      startToCloseMs,
      heartbeatMs,
      retryPolicy,
      scheduledTime: now,
      attemptScheduledTime: now,
      attempt: 1,
      state: 'scheduled',
      startedTime: 0,
      identity: '',
      requestId: '',
      heartbeatDetails: null,
      lastHeartbeatTime: 0,
      lastFailure: null,
      cancelRequestedEventId: 0,
      timers: {},
      lock: this.engine.clock.hold('activity'),
    };
    this.activities.set(scheduledEventId, activity);
    this.activityIds.set(activity.activityId, scheduledEventId);
    if (scheduleToCloseMs > 0) {
      activity.timers.scheduleToClose = this.engine.clock.after(scheduleToCloseMs, () =>
        this.timeOutActivity(activity, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, activity.attempt),
      );
    }
    // Eager dispatch (the real server's `system.enableActivityEagerExecution`): the worker that completes
    // this task receives the activity in its response, with no trip through the task queue.
    if (a.requestEagerExecution && this.engine.eagerActivityExecution) this.eagerActivities.push(activity);
    else this.afterCommit.push(() => this.enqueueActivity(activity));
  }

  private enqueueActivity(activity: ActivityState): void {
    if (!this.isRunning || this.activities.get(activity.scheduledEventId) !== activity) return;
    const attempt = activity.attempt;
    activity.state = 'scheduled';
    activity.attemptScheduledTime = this.now();
    activity.lock ??= this.engine.clock.hold('activity');
    if (activity.scheduleToStartMs > 0) {
      activity.timers.scheduleToStart?.cancel();
      activity.timers.scheduleToStart = this.engine.clock.after(activity.scheduleToStartMs, () =>
        this.timeOutActivity(activity, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, attempt),
      );
    }
    const task: Task<PollActivityTaskResponse> = {
      dispatch: (poller) => this.startActivity(activity, attempt, poller),
    };
    this.engine.matching.addTask(this.ns.name, activity.taskQueue, 'activity', task);
  }

  private startActivity(
    activity: ActivityState,
    attempt: number,
    poller: PollerInfo,
  ): PollActivityTaskResponse | undefined {
    if (
      !this.isRunning ||
      this.activities.get(activity.scheduledEventId) !== activity ||
      activity.state !== 'scheduled' ||
      activity.attempt !== attempt
    ) {
      return undefined;
    }
    this.stateTransitions++;
    activity.state = 'started';
    activity.startedTime = this.now();
    activity.identity = poller.identity;
    activity.requestId = randomUUID();
    activity.timers.scheduleToStart?.cancel();
    if (activity.startToCloseMs > 0) {
      activity.timers.startToClose = this.engine.clock.after(activity.startToCloseMs, () =>
        this.timeOutActivity(activity, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, attempt),
      );
    }
    this.armHeartbeatTimer(activity, attempt);
    return {
      taskToken: encodeTaskToken({
        k: 'a',
        ns: this.ns.name,
        wid: this.workflowId,
        rid: this.runId,
        s: activity.scheduledEventId,
        a: attempt,
      }),
      workflowNamespace: this.ns.name,
      workflowType: { name: this.workflowType },
      workflowExecution: this.execution,
      activityType: { name: activity.activityType },
      activityId: activity.activityId,
      header: activity.header ?? null,
      input: activity.input ?? null,
      heartbeatDetails: activity.heartbeatDetails ?? null,
      scheduledTime: timestampFromMs(activity.scheduledTime),
      currentAttemptScheduledTime: timestampFromMs(activity.attemptScheduledTime),
      startedTime: timestampFromMs(activity.startedTime),
      attempt,
      // Always present (0 = unlimited), as the real server sends them: the TS worker requires them.
      scheduleToCloseTimeout: durationFromMs(activity.scheduleToCloseMs),
      startToCloseTimeout: durationFromMs(activity.startToCloseMs),
      heartbeatTimeout: durationFromMs(activity.heartbeatMs),
      retryPolicy: retryPolicyToProto(activity.retryPolicy),
    };
  }

  private armHeartbeatTimer(activity: ActivityState, attempt: number): void {
    activity.timers.heartbeat?.cancel();
    if (activity.heartbeatMs <= 0) return;
    activity.timers.heartbeat = this.engine.clock.after(activity.heartbeatMs, () =>
      this.timeOutActivity(activity, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, attempt),
    );
  }

  /** Finds the started attempt a worker's token refers to, or throws NOT_FOUND. */
  startedActivity(scheduledEventId: number, attempt: number): ActivityState {
    if (!this.isRunning) throw notFound('workflow execution already completed');
    const activity = this.activities.get(scheduledEventId);
    if (!activity || activity.attempt !== attempt || activity.state !== 'started') {
      throw notFound(
        'activity task not found: it was completed, cancelled or timed out, or a later attempt runs',
      );
    }
    return activity;
  }

  activityById(activityId: string): ActivityState {
    const id = this.activityIds.get(activityId);
    const activity = id === undefined ? undefined : this.activities.get(id);
    if (!this.isRunning || !activity) throw notFound(`activity ${activityId} not found`);
    if (activity.state !== 'started') throw notFound(`activity ${activityId} is not running`);
    return activity;
  }

  /** RecordActivityTaskHeartbeat: keeps the details and says whether cancellation was requested. */
  heartbeatActivity(activity: ActivityState, details: IPayloads | null | undefined): boolean {
    activity.heartbeatDetails = details ?? activity.heartbeatDetails;
    activity.lastHeartbeatTime = this.now();
    this.armHeartbeatTimer(activity, activity.attempt);
    return activity.cancelRequestedEventId > 0;
  }

  private clearActivityTimers(activity: ActivityState, keepScheduleToClose: boolean): void {
    for (const [name, timer] of Object.entries(activity.timers)) {
      if (keepScheduleToClose && name === 'scheduleToClose') continue;
      timer.cancel();
      delete activity.timers[name as keyof ActivityState['timers']];
    }
  }

  private removeActivity(activity: ActivityState): void {
    this.clearActivityTimers(activity, false);
    activity.lock?.release();
    activity.lock = undefined;
    this.activities.delete(activity.scheduledEventId);
    this.activityIds.delete(activity.activityId);
  }

  /** Writes ActivityTaskStarted (at close, with the final attempt) followed by the closing event. */
  private closeActivity(
    activity: ActivityState,
    eventType: number,
    attributes: (startedEventId: number) => object,
  ): void {
    const wasStarted = activity.state === 'started';
    this.removeActivity(activity);
    let startedEventId = 0;
    if (wasStarted) {
      const time = this.now();
      // Builders run right before their event is appended, so nextEventId is the id this event gets.
      this.addEvent(() => {
        startedEventId = this.history.nextEventId;
        return makeEvent(
          ET.EVENT_TYPE_ACTIVITY_TASK_STARTED,
          {
            scheduledEventId: activity.scheduledEventId,
            identity: activity.identity,
            requestId: activity.requestId,
            attempt: activity.attempt,
            lastFailure: activity.lastFailure ?? null,
          },
          time,
        );
      });
    }
    this.addEventAndSchedule(this.event(eventType, () => attributes(startedEventId)));
  }

  completeActivity(activity: ActivityState, result: IPayloads | null | undefined, identity: string): void {
    activity.identity = identity || activity.identity;
    this.closeActivity(activity, ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, (startedEventId) => ({
      result: result ?? null,
      scheduledEventId: activity.scheduledEventId,
      startedEventId,
      identity: activity.identity,
    }));
  }

  failActivity(
    activity: ActivityState,
    failure: IFailure | null | undefined,
    lastHeartbeatDetails: IPayloads | null | undefined,
    identity: string,
  ): void {
    activity.identity = identity || activity.identity;
    if (lastHeartbeatDetails) activity.heartbeatDetails = lastHeartbeatDetails;
    const decision = this.retryDecision(activity, failure);
    if (decision.retry) {
      this.retryActivity(activity, failure, decision.delayMs);
      return;
    }
    this.closeActivity(activity, ET.EVENT_TYPE_ACTIVITY_TASK_FAILED, (startedEventId) => ({
      failure: failure ?? null,
      scheduledEventId: activity.scheduledEventId,
      startedEventId,
      identity: activity.identity,
      retryState: decision.state,
    }));
  }

  cancelActivityConfirmed(
    activity: ActivityState,
    details: IPayloads | null | undefined,
    identity: string,
  ): void {
    activity.identity = identity || activity.identity;
    this.closeActivity(activity, ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED, (startedEventId) => ({
      details: details ?? null,
      latestCancelRequestedEventId: activity.cancelRequestedEventId,
      scheduledEventId: activity.scheduledEventId,
      startedEventId,
      identity: activity.identity,
    }));
  }

  private retryDecision(
    activity: ActivityState,
    failure: IFailure | null | undefined,
  ): { retry: true; delayMs: number } | { retry: false; state: number } {
    const policy = activity.retryPolicy;
    if (activity.cancelRequestedEventId > 0)
      return { retry: false, state: RetryState.RETRY_STATE_CANCEL_REQUESTED };
    const app = failure?.applicationFailureInfo;
    if (app?.nonRetryable) return { retry: false, state: RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE };
    const type = app?.type ?? (failure?.timeoutFailureInfo ? 'TemporalTimeout' : '');
    if (type && policy.nonRetryableErrorTypes.includes(type))
      return { retry: false, state: RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE };
    if (policy.maximumAttempts > 0 && activity.attempt >= policy.maximumAttempts)
      return { retry: false, state: RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED };
    const explicit = app?.nextRetryDelay ? msFromDuration(app.nextRetryDelay) : 0;
    const computed = Math.min(
      policy.initialIntervalMs * Math.pow(policy.backoffCoefficient, activity.attempt - 1),
      policy.maximumIntervalMs,
    );
    const delayMs = explicit > 0 ? explicit : computed;
    if (
      activity.scheduleToCloseMs > 0 &&
      this.now() + delayMs >= activity.scheduledTime + activity.scheduleToCloseMs
    ) {
      return { retry: false, state: RetryState.RETRY_STATE_TIMEOUT };
    }
    return { retry: true, delayMs };
  }

  private retryActivity(
    activity: ActivityState,
    failure: IFailure | null | undefined,
    delayMs: number,
  ): void {
    this.clearActivityTimers(activity, true);
    this.stateTransitions++;
    activity.lastFailure = failure;
    activity.attempt++;
    activity.state = 'backoff';
    activity.startedTime = 0;
    // While waiting for the retry nothing is outstanding, so time may skip to it (as the Java server does).
    activity.lock?.release();
    activity.lock = undefined;
    activity.timers.retry = this.engine.clock.after(delayMs, () => {
      delete activity.timers.retry;
      this.enqueueActivity(activity);
    });
  }

  private timeOutActivity(activity: ActivityState, timeoutType: number, attempt: number): void {
    if (!this.isRunning || this.activities.get(activity.scheduledEventId) !== activity) return;
    if (timeoutType !== TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE && activity.attempt !== attempt) return;
    if (
      timeoutType === TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE ||
      timeoutType === TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    ) {
      if (activity.state !== 'started') return;
    }
    const failure: IFailure = {
      message: `activity ${TimeoutType[timeoutType]?.replace('TIMEOUT_TYPE_', '')} timeout`,
      source: 'Server',
      timeoutFailureInfo: { timeoutType, lastHeartbeatDetails: activity.heartbeatDetails ?? null },
    };
    let retryState: number = RetryState.RETRY_STATE_TIMEOUT;
    if (
      timeoutType === TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE ||
      timeoutType === TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    ) {
      const decision = this.retryDecision(activity, failure);
      if (decision.retry) {
        this.retryActivity(activity, failure, decision.delayMs);
        return;
      }
      retryState = decision.state;
    }
    // The real server sets the cause of every activity timeout to the last retried failure
    // (mutable_state_impl.go AddActivityTaskTimedOutEvent: `timeoutFailure.Cause = ai.RetryLastFailure`).
    const lastFailure = activity.lastFailure;
    this.closeActivity(activity, ET.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, (startedEventId) => ({
      failure: { ...failure, cause: lastFailure ?? null },
      scheduledEventId: activity.scheduledEventId,
      startedEventId,
      retryState,
    }));
  }

  /** RequestCancelActivityTask command; returns true when the activity was cancelled at once (new task). */
  private requestCancelActivity(scheduledEventId: number, completedId: number): boolean {
    const activity = this.activities.get(scheduledEventId)!;
    const requestedId = this.append(ET.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, {
      scheduledEventId,
      workflowTaskCompletedEventId: completedId,
    });
    activity.cancelRequestedEventId = requestedId;
    if (activity.state === 'started') return false;
    // Not running: cancelled immediately, as the real server does.
    this.removeActivity(activity);
    this.append(ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED, {
      latestCancelRequestedEventId: requestedId,
      scheduledEventId,
      startedEventId: 0,
      identity: '',
    });
    return true;
  }

  // ---------------------------------------------------------------------------------------------------
  // Signals, cancellation, termination
  // ---------------------------------------------------------------------------------------------------

  signal(
    name: string,
    input: IPayloads | null | undefined,
    header: IHeader | null | undefined,
    identity: string,
    requestId: string,
    external?: IWorkflowExecution,
  ): void {
    if (requestId) {
      if (this.signalRequestIds.has(requestId)) return;
      this.signalRequestIds.add(requestId);
    }
    this.addEventAndSchedule(
      this.event(ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, () => ({
        signalName: name,
        input: input ?? null,
        identity,
        header: header ?? null,
        externalWorkflowExecution: external ?? null,
      })),
    );
  }

  requestCancel(
    reason: string,
    identity: string,
    requestId: string,
    external?: { initiatedEventId: number; execution: IWorkflowExecution },
  ): void {
    if (requestId) {
      if (this.cancelRequestIds.has(requestId)) return;
      this.cancelRequestIds.add(requestId);
    }
    if (this.cancelRequested) return;
    this.cancelRequested = true;
    this.addEventAndSchedule(
      this.event(ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED, () => ({
        cause: reason,
        identity,
        externalInitiatedEventId: external?.initiatedEventId ?? 0,
        externalWorkflowExecution: external?.execution ?? null,
      })),
    );
  }

  /** Fails an in-flight workflow task before a forced close, as the real server does. */
  private failInFlightTaskForClose(): void {
    const wft = this.wft;
    if (wft?.state === 'started') {
      this.endWorkflowTask(wft);
      this.append(ET.EVENT_TYPE_WORKFLOW_TASK_FAILED, {
        scheduledEventId: wft.scheduledEventId,
        startedEventId: wft.startedEventId,
        cause: Cause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
        failure: null,
        identity: '',
      });
      this.requeueQueries(wft.queries);
    } else if (wft) {
      this.endWorkflowTask(wft);
    }
    this.flushBuffered();
  }

  terminate(reason: string, details: IPayloads | null | undefined, identity: string): void {
    this.failInFlightTaskForClose();
    this.close(Status.WORKFLOW_EXECUTION_STATUS_TERMINATED, ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, {
      reason,
      details: details ?? null,
      identity,
    });
  }

  private timeOut(): void {
    if (!this.isRunning) return;
    this.failInFlightTaskForClose();
    this.close(Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, ET.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, {
      retryState: RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET,
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // Children, external workflows, continue-as-new
  // ---------------------------------------------------------------------------------------------------

  private initiateChild(
    a: temporal.api.command.v1.IStartChildWorkflowExecutionCommandAttributes,
    completedId: number,
  ): void {
    const namespace = a.namespace || this.ns.name;
    const initiatedEventId = this.append(ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, {
      namespace,
      namespaceId: this.engine.namespaceId(namespace),
      workflowId: a.workflowId,
      workflowType: a.workflowType,
      taskQueue: {
        name: a.taskQueue?.name || this.taskQueue,
        kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
      },
      input: a.input ?? null,
      workflowExecutionTimeout: a.workflowExecutionTimeout ?? null,
      workflowRunTimeout: a.workflowRunTimeout ?? null,
      workflowTaskTimeout: a.workflowTaskTimeout ?? null,
      parentClosePolicy: a.parentClosePolicy || enums.ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE,
      control: a.control ?? '',
      workflowTaskCompletedEventId: completedId,
      workflowIdReusePolicy: a.workflowIdReusePolicy ?? 0,
      retryPolicy: a.retryPolicy ?? null,
      cronSchedule: a.cronSchedule ?? '',
      header: a.header ?? null,
      memo: a.memo ?? null,
      searchAttributes: a.searchAttributes ?? null,
      inheritBuildId: a.inheritBuildId ?? false,
      priority: a.priority ?? null,
    });
    const child: ChildState = {
      initiatedEventId,
      namespace,
      workflowId: a.workflowId!,
      workflowType: a.workflowType!.name!,
      runId: '',
      startedEventId: 0,
      parentClosePolicy: a.parentClosePolicy || enums.ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE,
    };
    this.children.set(initiatedEventId, child);
    this.afterCommit.push(() => {
      if (!this.isRunning) return;
      const started = this.engine.startChild(this, child, a);
      if (started.ok) {
        child.runId = started.runId;
        this.addEventAndSchedule(() => {
          child.startedEventId = this.history.nextEventId;
          return makeEvent(
            ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
            {
              namespace,
              namespaceId: this.engine.namespaceId(namespace),
              initiatedEventId,
              workflowExecution: { workflowId: child.workflowId, runId: child.runId },
              workflowType: { name: child.workflowType },
              header: a.header ?? null,
            },
            this.now(),
          );
        });
        started.afterParentNotified();
      } else {
        this.children.delete(initiatedEventId);
        this.addEventAndSchedule(
          this.event(ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED, () => ({
            namespace,
            namespaceId: this.engine.namespaceId(namespace),
            workflowId: child.workflowId,
            workflowType: { name: child.workflowType },
            cause: started.cause,
            control: a.control ?? '',
            initiatedEventId,
            workflowTaskCompletedEventId: completedId,
          })),
        );
      }
    });
  }

  /** Called by the engine when a child's chain closes. */
  childClosed(initiatedEventId: number, eventType: number, attributes: object, closedRunId?: string): void {
    const child = this.children.get(initiatedEventId);
    if (!child || !this.isRunning) return;
    this.children.delete(initiatedEventId);
    this.addEventAndSchedule(
      this.event(eventType, () => ({
        ...attributes,
        namespace: child.namespace,
        namespaceId: this.engine.namespaceId(child.namespace),
        // The run that closed (the last of a continue-as-new chain), as the real server records it.
        workflowExecution: { workflowId: child.workflowId, runId: closedRunId || child.runId },
        workflowType: { name: child.workflowType },
        initiatedEventId,
        startedEventId: child.startedEventId,
      })),
    );
  }

  private initiateSignalExternal(
    a: temporal.api.command.v1.ISignalExternalWorkflowExecutionCommandAttributes,
    completedId: number,
  ): void {
    const namespace = a.namespace || this.ns.name;
    const target = { workflowId: a.execution!.workflowId!, runId: a.execution!.runId ?? '' };
    const initiatedEventId = this.append(ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, {
      namespace,
      namespaceId: this.engine.namespaceId(namespace),
      workflowExecution: target,
      signalName: a.signalName,
      input: a.input ?? null,
      control: a.control ?? '',
      childWorkflowOnly: a.childWorkflowOnly ?? false,
      header: a.header ?? null,
      workflowTaskCompletedEventId: completedId,
    });
    this.afterCommit.push(() =>
      this.resolveExternalRequest({
        deliver: () => this.engine.deliverExternalSignal(namespace, target, a, this, initiatedEventId),
        deliveredType: ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
        failedType: ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
        failedCause:
          enums.SignalExternalWorkflowExecutionFailedCause
            .SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
        initiatedEventId,
        namespace,
        target,
        control: a.control ?? '',
        completedId,
        deliveredHasControl: true,
      }),
    );
  }

  private initiateCancelExternal(
    a: temporal.api.command.v1.IRequestCancelExternalWorkflowExecutionCommandAttributes,
    completedId: number,
  ): void {
    const namespace = a.namespace || this.ns.name;
    const target = { workflowId: a.workflowId!, runId: a.runId ?? '' };
    const initiatedEventId = this.append(ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, {
      namespace,
      namespaceId: this.engine.namespaceId(namespace),
      workflowExecution: target,
      control: a.control ?? '',
      childWorkflowOnly: a.childWorkflowOnly ?? false,
      reason: a.reason ?? '',
      workflowTaskCompletedEventId: completedId,
    });
    this.afterCommit.push(() =>
      this.resolveExternalRequest({
        deliver: () =>
          this.engine.deliverExternalCancel(namespace, target, a.reason ?? '', this, initiatedEventId),
        deliveredType: ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        failedType: ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
        failedCause:
          enums.CancelExternalWorkflowExecutionFailedCause
            .CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
        initiatedEventId,
        namespace,
        target,
        control: a.control ?? '',
        completedId,
        deliveredHasControl: false,
      }),
    );
  }

  /** Delivers a signal or cancel request to another workflow and writes the outcome event. */
  private resolveExternalRequest(r: {
    deliver: () => boolean;
    deliveredType: number;
    failedType: number;
    failedCause: number;
    initiatedEventId: number;
    namespace: string;
    target: IWorkflowExecution;
    control: string;
    completedId: number;
    deliveredHasControl: boolean;
  }): void {
    if (!this.isRunning) return;
    const common = {
      initiatedEventId: r.initiatedEventId,
      namespace: r.namespace,
      namespaceId: this.engine.namespaceId(r.namespace),
      workflowExecution: r.target,
    };
    if (r.deliver()) {
      const attributes = r.deliveredHasControl ? { ...common, control: r.control } : common;
      this.addEventAndSchedule(this.event(r.deliveredType, () => attributes));
    } else {
      this.addEventAndSchedule(
        this.event(r.failedType, () => ({
          ...common,
          cause: r.failedCause,
          workflowTaskCompletedEventId: r.completedId,
          control: r.control,
        })),
      );
    }
  }

  private continueAsNew(
    a: temporal.api.command.v1.IContinueAsNewWorkflowExecutionCommandAttributes,
    completedId: number,
  ): void {
    const newRunId = randomUUID();
    const runTimeoutMs = msFromDuration(a.workflowRunTimeout) || this.init.runTimeoutMs;
    const workflowTaskTimeoutMs = Math.min(
      msFromDuration(a.workflowTaskTimeout) || this.init.workflowTaskTimeoutMs,
      MAX_WORKFLOW_TASK_TIMEOUT_MS,
    );
    const taskQueue = a.taskQueue?.name || this.taskQueue;
    const workflowType = a.workflowType?.name || this.workflowType;
    this.nextRunId = newRunId;
    this.close(
      Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
      ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
      {
        newExecutionRunId: newRunId,
        workflowType: { name: workflowType },
        taskQueue: { name: taskQueue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        input: a.input ?? null,
        workflowRunTimeout: runTimeoutMs ? durationFromMs(runTimeoutMs) : null,
        workflowTaskTimeout: durationFromMs(workflowTaskTimeoutMs),
        workflowTaskCompletedEventId: completedId,
        backoffStartInterval: a.backoffStartInterval ?? null,
        initiator: a.initiator || enums.ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
        failure: a.failure ?? null,
        lastCompletionResult: a.lastCompletionResult ?? null,
        header: a.header ?? null,
        memo: a.memo ?? null,
        searchAttributes: a.searchAttributes ?? null,
      },
    );
    const memo = a.memo?.fields ? payloadMap(a.memo.fields) : { ...this.memo };
    const searchAttributes = a.searchAttributes?.indexedFields
      ? payloadMap(a.searchAttributes.indexedFields)
      : { ...this.searchAttributes };
    this.engine.startContinuedRun(this, {
      workflowId: this.workflowId,
      runId: newRunId,
      firstExecutionRunId: this.firstExecutionRunId,
      workflowType,
      taskQueue,
      input: a.input,
      header: a.header,
      memo,
      searchAttributes,
      runTimeoutMs,
      executionTimeoutMs: this.init.executionTimeoutMs,
      executionExpirationTime: this.init.executionExpirationTime,
      workflowTaskTimeoutMs,
      retryPolicy: a.retryPolicy ?? this.init.retryPolicy,
      cronSchedule: this.init.cronSchedule,
      identity: this.init.identity,
      requestId: randomUUID(),
      startDelayMs: msFromDuration(a.backoffStartInterval),
      parent: this.init.parent,
      root: this.init.root,
      continuedExecutionRunId: this.runId,
      initiator: a.initiator || enums.ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
      lastCompletionResult: a.lastCompletionResult ?? null,
      continuedFailure: a.failure ?? null,
      attempt: 1,
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // Closing
  // ---------------------------------------------------------------------------------------------------

  private close(status: number, eventType: number, attributes: object): void {
    this.append(eventType, attributes);
    this.status = status;
    this.closeTime = this.now();
    for (const timer of this.runTimers) timer.cancel();
    for (const { timer } of this.timers.values()) timer.cancel();
    this.timers.clear();
    for (const activity of [...this.activities.values()]) this.removeActivity(activity);
    if (this.wft) this.endWorkflowTask(this.wft);
    this.buffered.length = 0;
    // Queries on a closed run are answered from its history by a query task.
    const waiting = this.pendingQueries.splice(0);
    this.engine.runClosed(this, eventType, attributes);
    for (const q of waiting) this.dispatchLegacyQuery(q);
  }

  // ---------------------------------------------------------------------------------------------------
  // Queries
  // ---------------------------------------------------------------------------------------------------

  /**
   * QueryWorkflow: with a workflow task in flight the query rides on the next one (`queries`); otherwise it
   * goes to a worker as a legacy query task carrying the full history.
   */
  query(query: IWorkflowQuery, signal: AbortSignal): Promise<QueryOutcome> {
    return new Promise<QueryOutcome>((resolve) => {
      const pending: PendingQuery = {
        id: randomUUID(),
        query,
        done: false,
        resolve: (outcome) => {
          if (pending.done) return;
          pending.done = true;
          pending.lock?.release();
          resolve(outcome);
        },
      };
      signal.addEventListener(
        'abort',
        () => pending.resolve({ kind: 'gone', message: 'query cancelled by caller' }),
        {
          once: true,
        },
      );
      pending.lock = this.engine.clock.hold('query');
      if (this.isRunning && this.wft) this.pendingQueries.push(pending);
      else this.dispatchLegacyQuery(pending);
    });
  }

  private dispatchLegacyQuery(q: PendingQuery): void {
    if (q.done) return;
    const task: Task<PollWorkflowTaskResponse> = {
      dispatch: () => {
        if (q.done) return undefined;
        this.engine.registerQueryTask(this, q);
        return this.engine.encodeWorkflowTask(this, {
          taskToken: encodeTaskToken({
            k: 'q',
            ns: this.ns.name,
            wid: this.workflowId,
            rid: this.runId,
            q: q.id,
          }),
          workflowExecution: this.execution,
          workflowType: { name: this.workflowType },
          previousStartedEventId: long(this.lastCompletedStartedEventId),
          startedEventId: long(0),
          attempt: 1,
          query: q.query,
          workflowExecutionTaskQueue: {
            name: this.taskQueue,
            kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
          },
          scheduledTime: timestampFromMs(this.now()),
          startedTime: timestampFromMs(this.now()),
        });
      },
    };
    this.engine.matching.addTask(this.ns.name, this.taskQueue, 'workflow', task);
  }

  private answerQueries(
    delivered: PendingQuery[],
    results: Record<string, temporal.api.query.v1.IWorkflowQueryResult>,
  ): void {
    for (const q of delivered) {
      const r = results[q.id];
      if (!r) {
        this.pendingQueries.push(q);
        continue;
      }
      if (r.resultType === enums.QueryResultType.QUERY_RESULT_TYPE_ANSWERED)
        q.resolve({ kind: 'answered', result: r.answer });
      else q.resolve({ kind: 'failed', message: r.errorMessage || 'query failed', failure: r.failure });
    }
  }

  private requeueQueries(queries: PendingQuery[]): void {
    this.pendingQueries.unshift(...queries.filter((q) => !q.done));
  }

  /** After a task completed: queries still waiting go out as query tasks unless a new task will carry them. */
  private dispatchQueriesAfterTask(): void {
    if (this.wft) return;
    for (const q of this.pendingQueries.splice(0)) this.dispatchLegacyQuery(q);
  }

  // ---------------------------------------------------------------------------------------------------
  // Describe
  // ---------------------------------------------------------------------------------------------------

  pendingWorkflowTask(): temporal.api.workflow.v1.IPendingWorkflowTaskInfo | null {
    const wft = this.wft;
    if (!wft) return null;
    return {
      state:
        wft.state === 'started'
          ? enums.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
          : enums.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED,
      scheduledTime: timestampFromMs(wft.scheduledTime),
      originalScheduledTime: timestampFromMs(wft.scheduledTime),
      startedTime: wft.startedTime ? timestampFromMs(wft.startedTime) : null,
      attempt: wft.attempt,
    };
  }

  pendingActivities(): temporal.api.workflow.v1.IPendingActivityInfo[] {
    return [...this.activities.values()].map((a) => ({
      activityId: a.activityId,
      activityType: { name: a.activityType },
      state:
        a.cancelRequestedEventId > 0
          ? enums.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
          : a.state === 'started'
            ? enums.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            : enums.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED,
      heartbeatDetails: a.heartbeatDetails ?? null,
      lastHeartbeatTime: a.lastHeartbeatTime ? timestampFromMs(a.lastHeartbeatTime) : null,
      lastStartedTime: a.startedTime ? timestampFromMs(a.startedTime) : null,
      attempt: a.attempt,
      maximumAttempts: a.retryPolicy.maximumAttempts,
      scheduledTime: timestampFromMs(a.attemptScheduledTime),
      expirationTime: a.scheduleToCloseMs ? timestampFromMs(a.scheduledTime + a.scheduleToCloseMs) : null,
      lastFailure: a.lastFailure ?? null,
      lastWorkerIdentity: a.identity,
    }));
  }

  pendingChildren(): temporal.api.workflow.v1.IPendingChildExecutionInfo[] {
    return [...this.children.values()].map((c) => ({
      workflowId: c.workflowId,
      runId: c.runId,
      workflowTypeName: c.workflowType,
      initiatedId: long(c.initiatedEventId),
      parentClosePolicy: c.parentClosePolicy,
    }));
  }
}

export function isCloseCommand(commandType: number): boolean {
  return (
    commandType === CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION ||
    commandType === CT.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION ||
    commandType === CT.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION ||
    commandType === CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION
  );
}

export { RpcError, grpc };
