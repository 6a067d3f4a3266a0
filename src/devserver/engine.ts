/**
 * The server's state: namespaces, their workflow chains and runs, and the operations of the
 * WorkflowService that span more than one run (start with id policies, children, continue-as-new,
 * external signals and cancels, queries, history reads, visibility).
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { RpcError, invalidArgument, notFound } from './grpc-transport';
import { Execution, Status, DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, normalizeRetryPolicy } from './execution';
import type { ChildState, PendingQuery, QueryOutcome, RunInit } from './execution';
import { Matching } from './matching';
import {
  enums,
  lookupType,
  appendField,
  fieldHeader,
  msFromDuration,
  num,
  timestampFromMs,
  durationFromMs,
} from './proto';
import { long } from './proto';
import type { temporal, google } from './proto';
import type { VirtualClock } from './virtual-clock';
import {
  compileVisibilityQuery,
  SYSTEM_SEARCH_ATTRIBUTES,
  VisibilityQueryError,
  type SearchAttributeType,
  type VisibilityRecord,
  type VisibilityValue,
} from './visibility-query';

type IPayload = temporal.api.common.v1.IPayload;
type IWorkflowExecution = temporal.api.common.v1.IWorkflowExecution;
const ET = enums.EventType;
const IVT = enums.IndexedValueType;

export interface NamespaceState {
  name: string;
  id: string;
  description: string;
  ownerEmail: string;
  retentionMs: number;
  /** Custom search attributes: name -> IndexedValueType. */
  searchAttributes: Map<string, number>;
  /** Runs of each workflow id, oldest first. */
  chains: Map<string, Execution[]>;
  runs: Map<string, Execution>;
}

const MAX_ID_LENGTH = 1000;
/** How long a history long poll is held before it is answered empty with a token to poll again. */
const HISTORY_LONG_POLL_MS = 20_000;
const DEFAULT_HISTORY_PAGE = 1000;

export const SEARCH_ATTRIBUTE_TYPE_NAMES: Record<number, SearchAttributeType> = {
  [IVT.INDEXED_VALUE_TYPE_TEXT]: 'Text',
  [IVT.INDEXED_VALUE_TYPE_KEYWORD]: 'Keyword',
  [IVT.INDEXED_VALUE_TYPE_INT]: 'Int',
  [IVT.INDEXED_VALUE_TYPE_DOUBLE]: 'Double',
  [IVT.INDEXED_VALUE_TYPE_BOOL]: 'Bool',
  [IVT.INDEXED_VALUE_TYPE_DATETIME]: 'Datetime',
  [IVT.INDEXED_VALUE_TYPE_KEYWORD_LIST]: 'KeywordList',
};

/** Search attributes the SDKs and the server themselves write (patches, build ids, schedules). */
const SETTABLE_SYSTEM_ATTRIBUTES: Record<string, SearchAttributeType> = {
  TemporalChangeVersion: 'KeywordList',
  BuildIds: 'KeywordList',
  BinaryChecksums: 'KeywordList',
  TemporalScheduledStartTime: 'Datetime',
  TemporalScheduledById: 'Keyword',
  TemporalReportedProblems: 'KeywordList',
};

const STATUS_NAMES: Record<number, string> = {
  [Status.WORKFLOW_EXECUTION_STATUS_RUNNING]: 'Running',
  [Status.WORKFLOW_EXECUTION_STATUS_COMPLETED]: 'Completed',
  [Status.WORKFLOW_EXECUTION_STATUS_FAILED]: 'Failed',
  [Status.WORKFLOW_EXECUTION_STATUS_CANCELED]: 'Canceled',
  [Status.WORKFLOW_EXECUTION_STATUS_TERMINATED]: 'Terminated',
  [Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW]: 'ContinuedAsNew',
  [Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT]: 'TimedOut',
};

const pollWorkflowTaskResponseType = lookupType(
  'temporal.api.workflowservice.v1.PollWorkflowTaskQueueResponse',
);
const historyResponseType = lookupType('temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse');
const POLL_HISTORY_FIELD = pollWorkflowTaskResponseType.fields['history']!.id;
const RESPONSE_HISTORY_FIELD = historyResponseType.fields['history']!.id;

function requireString(value: string | null | undefined, field: string): string {
  if (!value) throw invalidArgument(`${field} is not set`);
  if (value.length > MAX_ID_LENGTH)
    throw invalidArgument(`${field} is longer than ${MAX_ID_LENGTH} characters`);
  return value;
}

function nonNegativeDuration(d: google.protobuf.IDuration | null | undefined, field: string): number {
  const ms = msFromDuration(d);
  if (ms < 0) throw invalidArgument(`${field} cannot be negative`);
  return ms;
}

/** Decodes a search-attribute payload (json/plain) into a comparable value. */
export function decodeSearchAttribute(
  payload: IPayload | undefined,
  type: SearchAttributeType | undefined,
): VisibilityValue {
  if (!payload?.data || payload.data.length === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.data).toString('utf8'));
  } catch {
    return undefined;
  }
  if (type === 'Datetime') {
    const v: unknown = Array.isArray(value) ? (value as unknown[])[0] : value;
    const ms = typeof v === 'string' ? Date.parse(v) : NaN;
    return Number.isNaN(ms) ? undefined : ms;
  }
  if (type === 'KeywordList') return Array.isArray(value) ? value.map(String) : [String(value)];
  if (Array.isArray(value)) return value.length > 0 ? (value[0] as VisibilityValue) : undefined;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  return undefined;
}

export interface EngineOptions {
  clock: VirtualClock;
  log?: (message: string) => void;
  /**
   * Hand activities a worker asks to run at once (`requestEagerExecution`) back in its workflow-task
   * completion, as a real server with `system.enableActivityEagerExecution` does. On by default.
   */
  eagerActivityExecution?: boolean;
}

export class Engine {
  readonly clock: VirtualClock;
  readonly matching = new Matching();
  private readonly namespaces = new Map<string, NamespaceState>();
  private readonly queryTasks = new Map<string, { exec: Execution; query: PendingQuery }>();
  private readonly log: (message: string) => void;

  readonly eagerActivityExecution: boolean;

  constructor(options: EngineOptions) {
    this.clock = options.clock;
    this.log = options.log ?? (() => undefined);
    this.eagerActivityExecution = options.eagerActivityExecution ?? true;
  }

  // ---------------------------------------------------------------------------------------------------
  // Namespaces and search attributes
  // ---------------------------------------------------------------------------------------------------

  registerNamespace(
    name: string,
    options: { description?: string; ownerEmail?: string; retentionMs?: number } = {},
  ): NamespaceState {
    requireString(name, 'namespace');
    if (this.namespaces.has(name)) {
      throw new RpcError(grpc.status.ALREADY_EXISTS, `Namespace ${name} already exists`);
    }
    const ns: NamespaceState = {
      name,
      id: randomUUID(),
      description: options.description ?? '',
      ownerEmail: options.ownerEmail ?? '',
      retentionMs: options.retentionMs || 24 * 3600_000,
      searchAttributes: new Map(),
      chains: new Map(),
      runs: new Map(),
    };
    this.namespaces.set(name, ns);
    return ns;
  }

  ensureNamespace(name: string): NamespaceState {
    return this.namespaces.get(name) ?? this.registerNamespace(name);
  }

  hasNamespace(name: string): boolean {
    return this.namespaces.has(name);
  }

  listNamespaces(): NamespaceState[] {
    return [...this.namespaces.values()];
  }

  namespace(name: string | null | undefined): NamespaceState {
    if (!name) throw invalidArgument('namespace is not set');
    const ns = this.namespaces.get(name);
    if (!ns) throw notFound(`Namespace ${name} is not found.`);
    return ns;
  }

  namespaceId(name: string): string {
    return this.namespaces.get(name)?.id ?? '';
  }

  addSearchAttributes(ns: NamespaceState, attributes: Record<string, number>): void {
    for (const [name, type] of Object.entries(attributes)) {
      if (!SEARCH_ATTRIBUTE_TYPE_NAMES[type])
        throw invalidArgument(`search attribute ${name} has an unknown type ${type}`);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        throw invalidArgument(`search attribute name ${JSON.stringify(name)} is not valid`);
      if (SYSTEM_SEARCH_ATTRIBUTES[name] || SETTABLE_SYSTEM_ATTRIBUTES[name])
        throw invalidArgument(`search attribute ${name} is reserved by the system`);
      const existing = ns.searchAttributes.get(name);
      if (existing !== undefined && existing !== type)
        throw new RpcError(
          grpc.status.ALREADY_EXISTS,
          `search attribute ${name} already exists with another type`,
        );
      ns.searchAttributes.set(name, type);
    }
  }

  searchAttributeType(ns: NamespaceState, name: string): SearchAttributeType | undefined {
    const custom = ns.searchAttributes.get(name);
    if (custom !== undefined) return SEARCH_ATTRIBUTE_TYPE_NAMES[custom];
    return SYSTEM_SEARCH_ATTRIBUTES[name] ?? SETTABLE_SYSTEM_ATTRIBUTES[name];
  }

  /** Returns a message naming the first search attribute that may not be set, or undefined. */
  checkSearchAttributes(ns: NamespaceState, fields: Record<string, IPayload>): string | undefined {
    for (const name of Object.keys(fields)) {
      if (!ns.searchAttributes.has(name) && !SETTABLE_SYSTEM_ATTRIBUTES[name]) {
        return `search attribute ${name} is not defined in namespace ${ns.name}: register it first (OperatorService AddSearchAttributes, or --search-attribute ${name}=Keyword)`;
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------------
  // Runs
  // ---------------------------------------------------------------------------------------------------

  private chain(ns: NamespaceState, workflowId: string): Execution[] {
    let runs = ns.chains.get(workflowId);
    if (!runs) {
      runs = [];
      ns.chains.set(workflowId, runs);
    }
    return runs;
  }

  currentRun(ns: NamespaceState, workflowId: string): Execution | undefined {
    const runs = ns.chains.get(workflowId);
    return runs?.[runs.length - 1];
  }

  /** The run named by `execution` (its current run when runId is empty), or NOT_FOUND. */
  run(ns: NamespaceState, execution: IWorkflowExecution | null | undefined): Execution {
    const workflowId = requireString(execution?.workflowId, 'execution.workflowId');
    const runId = execution?.runId ?? '';
    if (runId) {
      const run = ns.runs.get(runId);
      if (!run || run.workflowId !== workflowId) {
        throw notFound(`workflow execution not found for workflow ID "${workflowId}" and run ID "${runId}"`);
      }
      return run;
    }
    const run = this.currentRun(ns, workflowId);
    if (!run) throw notFound(`workflow execution not found for workflow ID "${workflowId}"`);
    return run;
  }

  /** Finds the run a workflow-scoped call addresses, following `firstExecutionRunId` when given. */
  runForChain(
    ns: NamespaceState,
    execution: IWorkflowExecution | null | undefined,
    firstExecutionRunId: string,
  ): Execution {
    if (!execution?.runId && firstExecutionRunId) {
      const run = this.run(ns, execution);
      if (run.firstExecutionRunId !== firstExecutionRunId) {
        throw notFound(
          `workflow execution not found: no run of "${run.workflowId}" started from run ${firstExecutionRunId}`,
        );
      }
      return run;
    }
    return this.run(ns, execution);
  }

  private register(ns: NamespaceState, exec: Execution): void {
    this.chain(ns, exec.workflowId).push(exec);
    ns.runs.set(exec.runId, exec);
  }

  /**
   * Forgets a closed run once the namespace's retention period has passed, so that a long-running dev
   * server does not grow without bound. Wall-clock time, also in time-skipping mode: a test that skips a
   * month can still read the histories it produced.
   */
  private scheduleRetention(exec: Execution): void {
    const timer = setTimeout(
      () => {
        const ns = exec.ns;
        ns.runs.delete(exec.runId);
        const runs = ns.chains.get(exec.workflowId);
        const i = runs?.indexOf(exec) ?? -1;
        if (runs && i >= 0) runs.splice(i, 1);
        if (runs?.length === 0) ns.chains.delete(exec.workflowId);
      },
      Math.min(exec.ns.retentionMs, 2 ** 31 - 1),
    );
    timer.unref();
  }

  private findRequestId(ns: NamespaceState, workflowId: string, requestId: string): Execution | undefined {
    if (!requestId) return undefined;
    return ns.chains.get(workflowId)?.find((run) => run.requestIds.has(requestId));
  }

  /** Id-reuse check against a closed previous run; throws ALREADY_EXISTS when the policy forbids a new run. */
  private checkReusePolicy(previous: Execution, policy: number, requestId: string): void {
    const P = enums.WorkflowIdReusePolicy;
    const failedLike = [
      Status.WORKFLOW_EXECUTION_STATUS_FAILED,
      Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
      Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
      Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
    ] as number[];
    if (
      policy === P.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE ||
      (policy === P.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY &&
        !failedLike.includes(previous.status))
    ) {
      throw this.alreadyStarted(
        previous,
        requestId,
        'Workflow execution already finished and the workflow ID reuse policy forbids a new run',
      );
    }
  }

  private alreadyStarted(existing: Execution, requestId: string, message: string): RpcError {
    return new RpcError(grpc.status.ALREADY_EXISTS, message, [
      {
        typeName: 'temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure',
        value: { startRequestId: requestId, runId: existing.runId },
      },
    ]);
  }

  /** StartWorkflowExecution and the start half of SignalWithStartWorkflowExecution. */
  startWorkflow(
    req: temporal.api.workflowservice.v1.IStartWorkflowExecutionRequest,
    signal?: {
      name: string;
      input: temporal.api.common.v1.IPayloads | null | undefined;
      header: temporal.api.common.v1.IHeader | null | undefined;
    },
  ): { runId: string; started: boolean; exec: Execution } {
    const ns = this.namespace(req.namespace);
    const workflowId = requireString(req.workflowId, 'workflowId');
    const workflowType = requireString(req.workflowType?.name, 'workflowType.name');
    const taskQueue = requireString(req.taskQueue?.name, 'taskQueue.name');
    const executionTimeoutMs = nonNegativeDuration(req.workflowExecutionTimeout, 'workflowExecutionTimeout');
    const runTimeoutMs = nonNegativeDuration(req.workflowRunTimeout, 'workflowRunTimeout');
    const taskTimeoutMs = nonNegativeDuration(req.workflowTaskTimeout, 'workflowTaskTimeout');
    const startDelayMs = nonNegativeDuration(req.workflowStartDelay, 'workflowStartDelay');
    if (req.retryPolicy) normalizeRetryPolicy(req.retryPolicy, 'StartWorkflowExecutionRequest');
    if (req.cronSchedule) throw invalidArgument('cronSchedule is not supported by this dev server');
    const problem = this.checkSearchAttributes(ns, req.searchAttributes?.indexedFields ?? {});
    if (problem) throw invalidArgument(problem);
    const requestId = req.requestId || randomUUID();

    const byRequest = this.findRequestId(ns, workflowId, requestId);
    if (byRequest) return { runId: byRequest.runId, started: true, exec: byRequest };

    const current = this.currentRun(ns, workflowId);
    const C = enums.WorkflowIdConflictPolicy;
    let conflict = req.workflowIdConflictPolicy ?? C.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED;
    let reuse = req.workflowIdReusePolicy ?? enums.WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED;
    if (reuse === enums.WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING) {
      if (conflict !== C.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED)
        throw invalidArgument(
          'workflowIdReusePolicy TERMINATE_IF_RUNNING cannot be combined with a workflowIdConflictPolicy',
        );
      conflict = C.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING;
      reuse = enums.WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE;
    }
    if (current?.isRunning) {
      if (signal && conflict === C.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED)
        conflict = C.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING;
      if (conflict === C.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING) {
        if (signal) {
          current.signal(signal.name, signal.input, signal.header, req.identity ?? '', requestId);
          current.skipStartDelay();
        }
        return { runId: current.runId, started: false, exec: current };
      }
      if (conflict === C.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING) {
        current.terminate(
          'terminated by a new start of the same workflow ID (conflict policy TERMINATE_EXISTING)',
          null,
          req.identity ?? '',
        );
      } else {
        throw this.alreadyStarted(current, requestId, 'Workflow execution is already running');
      }
    } else if (current) {
      this.checkReusePolicy(current, reuse, requestId);
    }

    const runId = randomUUID();
    const now = this.clock.now();
    const init: RunInit = {
      workflowId,
      runId,
      firstExecutionRunId: runId,
      workflowType,
      taskQueue,
      input: req.input,
      header: req.header,
      memo: { ...(req.memo?.fields ?? {}) },
      searchAttributes: { ...(req.searchAttributes?.indexedFields ?? {}) },
      runTimeoutMs: runTimeoutMs || executionTimeoutMs,
      executionTimeoutMs,
      executionExpirationTime: executionTimeoutMs ? now + executionTimeoutMs : 0,
      workflowTaskTimeoutMs: Math.min(taskTimeoutMs || DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, 120_000),
      retryPolicy: req.retryPolicy,
      cronSchedule: '',
      identity: req.identity ?? '',
      requestId,
      startDelayMs,
      root: { workflowId, runId },
      attempt: 1,
      userMetadata: req.userMetadata,
      priority: req.priority,
    };
    const exec = new Execution(this, ns, init);
    this.register(ns, exec);
    exec.start(signal ? { ...signal, identity: req.identity ?? '' } : undefined);
    return { runId, started: true, exec };
  }

  /** Starts the next run of a chain after continue-as-new. */
  startContinuedRun(previous: Execution, init: RunInit): Execution {
    const exec = new Execution(this, previous.ns, init);
    this.register(previous.ns, exec);
    exec.start();
    return exec;
  }

  /** Starts a child for `parent`; the parent writes the started or failed event. */
  startChild(
    parent: Execution,
    child: ChildState,
    a: temporal.api.command.v1.IStartChildWorkflowExecutionCommandAttributes,
  ): { ok: true; runId: string; afterParentNotified: () => void } | { ok: false; cause: number } {
    const ns = this.namespaces.get(child.namespace);
    const Cause = enums.StartChildWorkflowExecutionFailedCause;
    if (!ns)
      return { ok: false, cause: Cause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND };
    const current = this.currentRun(ns, child.workflowId);
    if (current?.isRunning)
      return { ok: false, cause: Cause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS };
    if (current) {
      try {
        this.checkReusePolicy(current, a.workflowIdReusePolicy ?? 0, '');
      } catch {
        return {
          ok: false,
          cause: Cause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS,
        };
      }
    }
    const runId = randomUUID();
    const executionTimeoutMs = msFromDuration(a.workflowExecutionTimeout);
    const runTimeoutMs = msFromDuration(a.workflowRunTimeout) || executionTimeoutMs;
    const init: RunInit = {
      workflowId: child.workflowId,
      runId,
      firstExecutionRunId: runId,
      workflowType: child.workflowType,
      taskQueue: a.taskQueue?.name || parent.taskQueue,
      input: a.input,
      header: a.header,
      memo: { ...(a.memo?.fields ?? {}) },
      searchAttributes: { ...(a.searchAttributes?.indexedFields ?? {}) },
      runTimeoutMs,
      executionTimeoutMs,
      executionExpirationTime: executionTimeoutMs ? this.clock.now() + executionTimeoutMs : 0,
      workflowTaskTimeoutMs: Math.min(
        msFromDuration(a.workflowTaskTimeout) || DEFAULT_WORKFLOW_TASK_TIMEOUT_MS,
        120_000,
      ),
      retryPolicy: a.retryPolicy,
      cronSchedule: '',
      identity: '',
      requestId: randomUUID(),
      startDelayMs: 0,
      parent: {
        namespace: parent.ns.name,
        workflowId: parent.workflowId,
        runId: parent.runId,
        initiatedEventId: child.initiatedEventId,
      },
      root: parent.init.root,
      attempt: 1,
      priority: a.priority,
    };
    const exec = new Execution(this, ns, init);
    this.register(ns, exec);
    return { ok: true, runId, afterParentNotified: () => exec.start() };
  }

  /** Bookkeeping after a run closed: tell the parent, apply parent-close policies to children. */
  runClosed(exec: Execution, eventType: number, attributes: object): void {
    this.scheduleRetention(exec);
    const a = attributes as Record<string, unknown>;
    const parent = exec.init.parent;
    if (parent && exec.status !== Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW) {
      const parentNs = this.namespaces.get(parent.namespace);
      const parentRun = parentNs?.runs.get(parent.runId);
      const mapping: Record<number, [number, object]> = {
        [ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED]: [
          ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
          { result: a['result'] ?? null },
        ],
        [ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED]: [
          ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
          { failure: a['failure'] ?? null, retryState: a['retryState'] ?? 0 },
        ],
        [ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED]: [
          ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
          { details: a['details'] ?? null },
        ],
        [ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED]: [
          ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
          {},
        ],
        [ET.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT]: [
          ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
          { retryState: a['retryState'] ?? 0 },
        ],
      };
      const mapped = mapping[eventType];
      if (parentRun && mapped) {
        parentRun.childClosed(parent.initiatedEventId, mapped[0], mapped[1], exec.runId);
      }
    }
    if (exec.status === Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW) return;
    for (const child of [...exec.children.values()]) {
      if (!child.runId) continue;
      const childNs = this.namespaces.get(child.namespace);
      const run = childNs && this.currentRun(childNs, child.workflowId);
      if (!run?.isRunning || run.firstExecutionRunId !== child.runId) continue;
      if (child.parentClosePolicy === enums.ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE) {
        run.terminate('by parent close policy', null, '');
      } else if (child.parentClosePolicy === enums.ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL) {
        run.requestCancel('by parent close policy', '', '');
      }
    }
  }

  deliverExternalSignal(
    namespace: string,
    target: IWorkflowExecution,
    a: temporal.api.command.v1.ISignalExternalWorkflowExecutionCommandAttributes,
    source: Execution,
    initiatedEventId: number,
  ): boolean {
    const run = this.externalTarget(namespace, target, source, a.childWorkflowOnly ?? false);
    if (!run) return false;
    run.signal(
      a.signalName ?? '',
      a.input,
      a.header,
      '',
      `${source.runId}:${initiatedEventId}`,
      source.execution,
    );
    return true;
  }

  deliverExternalCancel(
    namespace: string,
    target: IWorkflowExecution,
    reason: string,
    source: Execution,
    initiatedEventId: number,
  ): boolean {
    const run = this.externalTarget(namespace, target, source, false);
    if (!run) return false;
    run.requestCancel(reason, '', `${source.runId}:${initiatedEventId}`, {
      initiatedEventId,
      execution: source.execution,
    });
    return true;
  }

  private externalTarget(
    namespace: string,
    target: IWorkflowExecution,
    source: Execution,
    childOnly: boolean,
  ): Execution | undefined {
    const ns = this.namespaces.get(namespace);
    if (!ns) return undefined;
    const run = target.runId ? ns.runs.get(target.runId) : this.currentRun(ns, target.workflowId ?? '');
    if (!run || run.workflowId !== target.workflowId || !run.isRunning) return undefined;
    if (childOnly && run.init.parent?.runId !== source.runId) return undefined;
    return run;
  }

  // ---------------------------------------------------------------------------------------------------
  // Workflow task encoding and query tasks
  // ---------------------------------------------------------------------------------------------------

  /** Encodes a PollWorkflowTaskQueueResponse with the run's full history, from pre-encoded events. */
  encodeWorkflowTask(
    exec: Execution,
    response: temporal.api.workflowservice.v1.IPollWorkflowTaskQueueResponse,
  ): Buffer {
    const head = pollWorkflowTaskResponseType.encode(response).finish();
    return appendField(head, POLL_HISTORY_FIELD, exec.history.encodedRange());
  }

  registerQueryTask(exec: Execution, query: PendingQuery): void {
    this.queryTasks.set(query.id, { exec, query });
    const resolve = query.resolve;
    query.resolve = (outcome: QueryOutcome) => {
      this.queryTasks.delete(query.id);
      resolve(outcome);
    };
  }

  completeQueryTask(
    queryId: string,
    req: temporal.api.workflowservice.v1.IRespondQueryTaskCompletedRequest,
  ): void {
    const entry = this.queryTasks.get(queryId);
    if (!entry) throw notFound('query task not found: the query was already answered or its caller gave up');
    if (req.completedType === enums.QueryResultType.QUERY_RESULT_TYPE_ANSWERED) {
      entry.query.resolve({ kind: 'answered', result: req.queryResult });
    } else {
      entry.query.resolve({
        kind: 'failed',
        message: req.errorMessage || 'query failed',
        failure: req.failure,
      });
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // History reads
  // ---------------------------------------------------------------------------------------------------

  async getHistory(
    req: temporal.api.workflowservice.v1.IGetWorkflowExecutionHistoryRequest,
    deadline: number,
    signal: AbortSignal,
  ): Promise<Buffer> {
    const ns = this.namespace(req.namespace);
    const exec = this.run(ns, req.execution);
    const closeOnly =
      req.historyEventFilterType === enums.HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT;
    let from = 1;
    if (req.nextPageToken && req.nextPageToken.length > 0) {
      const token = this.decodePageToken(req.nextPageToken);
      if (token.rid !== exec.runId) throw invalidArgument('nextPageToken belongs to another run');
      from = token.next;
    }
    const pageSize =
      req.maximumPageSize && req.maximumPageSize > 0 ? req.maximumPageSize : DEFAULT_HISTORY_PAGE;
    const ready = () => (closeOnly ? !exec.isRunning : exec.history.length >= from || !exec.isRunning);
    if (req.waitNewEvent && !ready()) {
      await this.waitForHistory(exec, ready, deadline, signal);
    }
    if (closeOnly) {
      if (exec.isRunning)
        return this.encodeHistoryResponse(exec, 1, 0, { rid: exec.runId, next: exec.history.nextEventId });
      const last = exec.history.length;
      return this.encodeHistoryResponse(exec, last, last, undefined);
    }
    const to = Math.min(exec.history.length, from + pageSize - 1);
    const more = to < exec.history.length || (req.waitNewEvent === true && exec.isRunning);
    return this.encodeHistoryResponse(exec, from, to, more ? { rid: exec.runId, next: to + 1 } : undefined);
  }

  private waitForHistory(
    exec: Execution,
    ready: () => boolean,
    deadline: number,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        unsubscribe();
        signal.removeEventListener('abort', finish);
        resolve();
      };
      const unsubscribe = exec.history.subscribe(() => {
        if (ready()) finish();
      });
      const wait = Math.max(0, Math.min(HISTORY_LONG_POLL_MS, deadline - 1000 - Date.now()));
      const timer = setTimeout(finish, wait);
      signal.addEventListener('abort', finish, { once: true });
    });
  }

  private decodePageToken(bytes: Uint8Array): { rid: string; next: number } {
    try {
      const t = JSON.parse(Buffer.from(bytes).toString('utf8')) as { rid?: unknown; next?: unknown };
      if (typeof t.rid === 'string' && typeof t.next === 'number' && t.next >= 1)
        return { rid: t.rid, next: t.next };
    } catch {
      // fall through
    }
    throw invalidArgument('nextPageToken is malformed');
  }

  private encodeHistoryResponse(
    exec: Execution,
    from: number,
    to: number,
    next: { rid: string; next: number } | undefined,
  ): Buffer {
    const head = historyResponseType
      .encode({ nextPageToken: next ? Buffer.from(JSON.stringify(next)) : Buffer.alloc(0), archived: false })
      .finish();
    const events = to >= from ? exec.history.encodedRange(from, to) : Buffer.alloc(0);
    return Buffer.concat([head, fieldHeader(RESPONSE_HISTORY_FIELD, events.length), events]);
  }

  // ---------------------------------------------------------------------------------------------------
  // Describe and visibility
  // ---------------------------------------------------------------------------------------------------

  executionInfo(exec: Execution): temporal.api.workflow.v1.IWorkflowExecutionInfo {
    const parent = exec.init.parent;
    return {
      execution: exec.execution,
      type: { name: exec.workflowType },
      startTime: timestampFromMs(exec.startTime),
      closeTime: exec.closeTime ? timestampFromMs(exec.closeTime) : null,
      status: exec.status,
      historyLength: long(exec.history.length),
      parentNamespaceId: parent ? this.namespaceId(parent.namespace) : '',
      parentExecution: parent ? { workflowId: parent.workflowId, runId: parent.runId } : null,
      executionTime: timestampFromMs(exec.executionTime),
      memo: { fields: exec.memo },
      searchAttributes: { indexedFields: exec.searchAttributes },
      autoResetPoints: { points: [] },
      taskQueue: exec.taskQueue,
      stateTransitionCount: long(exec.stateTransitions),
      historySizeBytes: long(exec.history.sizeBytes),
      rootExecution: exec.init.root,
      firstRunId: exec.firstExecutionRunId,
      executionDuration: exec.closeTime ? durationFromMs(exec.closeTime - exec.executionTime) : null,
    };
  }

  private record(ns: NamespaceState, exec: Execution): VisibilityRecord {
    return {
      get: (name: string): VisibilityValue => {
        switch (name) {
          case 'WorkflowId':
            return exec.workflowId;
          case 'RunId':
            return exec.runId;
          case 'WorkflowType':
            return exec.workflowType;
          case 'ExecutionStatus':
            return STATUS_NAMES[exec.status];
          case 'StartTime':
            return exec.startTime;
          case 'CloseTime':
            return exec.closeTime || undefined;
          case 'ExecutionTime':
            return exec.executionTime;
          case 'TaskQueue':
            return exec.taskQueue;
          case 'HistoryLength':
            return exec.history.length;
          case 'ParentWorkflowId':
            return exec.init.parent?.workflowId;
          case 'RootWorkflowId':
            return exec.init.root.workflowId ?? undefined;
          default:
            return decodeSearchAttribute(exec.searchAttributes[name], this.searchAttributeType(ns, name));
        }
      },
    };
  }

  /** Runs matching a visibility query, in the query's order (default: newest start first). */
  listRuns(ns: NamespaceState, query: string): Execution[] {
    let compiled;
    try {
      compiled = compileVisibilityQuery(query, (name) => this.searchAttributeType(ns, name));
    } catch (err) {
      if (err instanceof VisibilityQueryError) throw invalidArgument(`invalid query: ${err.message}`);
      throw err;
    }
    const rows = [...ns.runs.values()].map((exec) => ({ exec, record: this.record(ns, exec) }));
    const matching = rows.filter((row) => compiled.matches(row.record));
    matching.sort((a, b) => {
      if (compiled.hasOrderBy) {
        const c = compiled.compare(a.record, b.record);
        if (c !== 0) return c;
      }
      return b.exec.startTime - a.exec.startTime || (a.exec.runId < b.exec.runId ? -1 : 1);
    });
    return matching.map((row) => row.exec);
  }

  describeStatusName(status: number): string {
    return STATUS_NAMES[status] ?? 'Unspecified';
  }

  /** For tests and diagnostics. */
  stats(): { namespaces: number; runs: number; running: number } {
    let runs = 0;
    let running = 0;
    for (const ns of this.namespaces.values()) {
      for (const run of ns.runs.values()) {
        runs++;
        if (run.isRunning) running++;
      }
    }
    return { namespaces: this.namespaces.size, runs, running };
  }

  logInternal(message: string): void {
    this.log(message);
  }

  /** Numbers of an int64 field, exposed for service handlers. */
  static num = num;
}
