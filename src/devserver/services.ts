/**
 * RPC handlers: WorkflowService, OperatorService, TestService and gRPC health. They validate requests
 * (INVALID_ARGUMENT naming the field), resolve namespaces (NOT_FOUND) and delegate to the engine.
 */
import * as grpc from '@grpc/grpc-js';
import { RpcError, invalidArgument, type CallContext, type Handlers } from './grpc-transport';
import { decodeTaskToken } from './task-token';
import { SEARCH_ATTRIBUTE_TYPE_NAMES, type Engine } from './engine';
import type { Execution } from './execution';
import { temporal } from '@temporalio/proto';
import { enums, num, msFromDuration, timestampFromMs, durationFromMs, msFromTimestamp } from './proto';
import { SYSTEM_SEARCH_ATTRIBUTES } from './visibility-query';

import ws = temporal.api.workflowservice.v1;
type IPayloads = temporal.api.common.v1.IPayloads;

export const SERVER_VERSION = '1.28.0-aceh-devserver';

/** Only what is really implemented is advertised (see the SDK core's use of these flags). */
export const SYSTEM_CAPABILITIES = {
  signalAndQueryHeader: true,
  internalErrorDifferentiation: false,
  activityFailureIncludeHeartbeat: true,
  supportsSchedules: false,
  encodedFailureAttributes: true,
  buildIdBasedVersioning: false,
  upsertMemo: true,
  eagerWorkflowStart: false,
  sdkMetadata: true,
  countGroupByExecutionStatus: false,
  nexus: false,
};

function taskQueueName(tq: temporal.api.taskqueue.v1.ITaskQueue | null | undefined): string {
  if (!tq?.name) throw invalidArgument('taskQueue.name is not set');
  return tq.name;
}

function executionOf(ctx: {
  execution?: temporal.api.common.v1.IWorkflowExecution | null;
}): temporal.api.common.v1.IWorkflowExecution {
  if (!ctx.execution?.workflowId) throw invalidArgument('execution.workflowId is not set');
  return ctx.execution;
}

export function workflowServiceHandlers(engine: Engine): Handlers {
  const runOf = (
    namespace: string | null | undefined,
    execution: temporal.api.common.v1.IWorkflowExecution,
    firstRunId = '',
  ): Execution => engine.runForChain(engine.namespace(namespace), execution, firstRunId);

  const requireRunning = (exec: Execution): Execution => {
    if (!exec.isRunning) throw new RpcError(grpc.status.NOT_FOUND, 'workflow execution already completed');
    return exec;
  };

  /** Resolves an activity from a worker's task token. */
  const activityFromToken = (taskToken: Uint8Array | null | undefined) => {
    const token = decodeTaskToken(taskToken, ['a']);
    if (token.k !== 'a') throw invalidArgument('taskToken is not an activity task token');
    const exec = engine.run(engine.namespace(token.ns), { workflowId: token.wid, runId: token.rid });
    return { exec, activity: exec.startedActivity(token.s, token.a) };
  };

  const activityById = (req: {
    namespace?: string | null;
    workflowId?: string | null;
    runId?: string | null;
    activityId?: string | null;
  }) => {
    if (!req.activityId) throw invalidArgument('activityId is not set');
    const exec = engine.run(engine.namespace(req.namespace), {
      workflowId: req.workflowId ?? '',
      runId: req.runId ?? '',
    });
    return { exec, activity: exec.activityById(req.activityId) };
  };

  return {
    GetSystemInfo: () => ({ serverVersion: SERVER_VERSION, capabilities: SYSTEM_CAPABILITIES }),

    RegisterNamespace: (req: ws.IRegisterNamespaceRequest) => {
      engine.registerNamespace(req.namespace ?? '', {
        description: req.description ?? '',
        ownerEmail: req.ownerEmail ?? '',
        retentionMs: msFromDuration(req.workflowExecutionRetentionPeriod),
      });
      return {};
    },

    DescribeNamespace: (req: ws.IDescribeNamespaceRequest) => {
      const ns = req.id
        ? engine.listNamespaces().find((n) => n.id === req.id)
        : engine.namespace(req.namespace);
      if (!ns) throw new RpcError(grpc.status.NOT_FOUND, `Namespace with id ${req.id} is not found.`);
      return describeNamespace(ns);
    },

    ListNamespaces: () => ({
      namespaces: engine.listNamespaces().map(describeNamespace),
      nextPageToken: Buffer.alloc(0),
    }),

    StartWorkflowExecution: (req: ws.IStartWorkflowExecutionRequest) => {
      const { runId, started } = engine.startWorkflow(req);
      return { runId, started };
    },

    SignalWithStartWorkflowExecution: (req: ws.ISignalWithStartWorkflowExecutionRequest) => {
      if (!req.signalName) throw invalidArgument('signalName is not set');
      const { runId, started } = engine.startWorkflow(req, {
        name: req.signalName,
        input: req.signalInput,
        header: req.header,
      });
      return { runId, started };
    },

    SignalWorkflowExecution: (req: ws.ISignalWorkflowExecutionRequest) => {
      if (!req.signalName) throw invalidArgument('signalName is not set');
      const exec = requireRunning(runOf(req.namespace, executionOf({ execution: req.workflowExecution })));
      exec.signal(req.signalName, req.input, req.header, req.identity ?? '', req.requestId ?? '');
      return {};
    },

    RequestCancelWorkflowExecution: (req: ws.IRequestCancelWorkflowExecutionRequest) => {
      const exec = requireRunning(
        runOf(
          req.namespace,
          executionOf({ execution: req.workflowExecution }),
          req.firstExecutionRunId ?? '',
        ),
      );
      exec.requestCancel(req.reason ?? '', req.identity ?? '', req.requestId ?? '');
      return {};
    },

    TerminateWorkflowExecution: (req: ws.ITerminateWorkflowExecutionRequest) => {
      const exec = requireRunning(
        runOf(
          req.namespace,
          executionOf({ execution: req.workflowExecution }),
          req.firstExecutionRunId ?? '',
        ),
      );
      exec.terminate(req.reason ?? '', req.details, req.identity ?? '');
      return {};
    },

    DescribeWorkflowExecution: (req: ws.IDescribeWorkflowExecutionRequest) => {
      const exec = runOf(req.namespace, executionOf(req));
      return {
        executionConfig: {
          taskQueue: { name: exec.taskQueue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
          workflowExecutionTimeout: exec.init.executionTimeoutMs
            ? durationFromMs(exec.init.executionTimeoutMs)
            : null,
          workflowRunTimeout: exec.init.runTimeoutMs ? durationFromMs(exec.init.runTimeoutMs) : null,
          defaultWorkflowTaskTimeout: durationFromMs(exec.workflowTaskTimeoutMs),
        },
        workflowExecutionInfo: engine.executionInfo(exec),
        pendingActivities: exec.pendingActivities(),
        pendingChildren: exec.pendingChildren(),
        pendingWorkflowTask: exec.pendingWorkflowTask(),
      };
    },

    GetWorkflowExecutionHistory: (req: ws.IGetWorkflowExecutionHistoryRequest, ctx: CallContext) => {
      executionOf(req);
      return engine.getHistory(req, ctx.deadline, ctx.signal);
    },

    PollWorkflowTaskQueue: async (req: ws.IPollWorkflowTaskQueueRequest, ctx: CallContext) => {
      const ns = engine.namespace(req.namespace);
      const name = taskQueueName(req.taskQueue);
      const response = await engine.matching.poll<Buffer>(
        ns.name,
        name,
        'workflow',
        { identity: req.identity ?? '' },
        ctx.deadline,
        ctx.signal,
      );
      return response ?? {};
    },

    RespondWorkflowTaskCompleted: (req: ws.IRespondWorkflowTaskCompletedRequest) => {
      const token = decodeTaskToken(req.taskToken, ['w']);
      if (token.k !== 'w') throw invalidArgument('taskToken is not a workflow task token');
      const exec = engine.run(engine.namespace(token.ns), { workflowId: token.wid, runId: token.rid });
      return { activityTasks: exec.completeWorkflowTask(token.s, token.a, req) };
    },

    RespondWorkflowTaskFailed: (req: ws.IRespondWorkflowTaskFailedRequest) => {
      const token = decodeTaskToken(req.taskToken, ['w']);
      if (token.k !== 'w') throw invalidArgument('taskToken is not a workflow task token');
      const exec = engine.run(engine.namespace(token.ns), { workflowId: token.wid, runId: token.rid });
      exec.failWorkflowTask(token.s, token.a, req);
      return {};
    },

    PollActivityTaskQueue: async (req: ws.IPollActivityTaskQueueRequest, ctx: CallContext) => {
      const ns = engine.namespace(req.namespace);
      const name = taskQueueName(req.taskQueue);
      const response = await engine.matching.poll(
        ns.name,
        name,
        'activity',
        { identity: req.identity ?? '' },
        ctx.deadline,
        ctx.signal,
      );
      return response ?? {};
    },

    RecordActivityTaskHeartbeat: (req: ws.IRecordActivityTaskHeartbeatRequest) => {
      const { exec, activity } = activityFromToken(req.taskToken);
      return { cancelRequested: exec.heartbeatActivity(activity, req.details) };
    },
    RecordActivityTaskHeartbeatById: (req: ws.IRecordActivityTaskHeartbeatByIdRequest) => {
      const { exec, activity } = activityById(req);
      return { cancelRequested: exec.heartbeatActivity(activity, req.details) };
    },

    RespondActivityTaskCompleted: (req: ws.IRespondActivityTaskCompletedRequest) => {
      const { exec, activity } = activityFromToken(req.taskToken);
      exec.completeActivity(activity, req.result, req.identity ?? '');
      return {};
    },
    RespondActivityTaskCompletedById: (req: ws.IRespondActivityTaskCompletedByIdRequest) => {
      const { exec, activity } = activityById(req);
      exec.completeActivity(activity, req.result, req.identity ?? '');
      return {};
    },

    RespondActivityTaskFailed: (req: ws.IRespondActivityTaskFailedRequest) => {
      const { exec, activity } = activityFromToken(req.taskToken);
      exec.failActivity(activity, req.failure, req.lastHeartbeatDetails, req.identity ?? '');
      return {};
    },
    RespondActivityTaskFailedById: (req: ws.IRespondActivityTaskFailedByIdRequest) => {
      const { exec, activity } = activityById(req);
      exec.failActivity(activity, req.failure, req.lastHeartbeatDetails, req.identity ?? '');
      return {};
    },

    RespondActivityTaskCanceled: (req: ws.IRespondActivityTaskCanceledRequest) => {
      const { exec, activity } = activityFromToken(req.taskToken);
      exec.cancelActivityConfirmed(activity, req.details, req.identity ?? '');
      return {};
    },
    RespondActivityTaskCanceledById: (req: ws.IRespondActivityTaskCanceledByIdRequest) => {
      const { exec, activity } = activityById(req);
      exec.cancelActivityConfirmed(activity, req.details, req.identity ?? '');
      return {};
    },

    QueryWorkflow: async (req: ws.IQueryWorkflowRequest, ctx: CallContext) => {
      if (!req.query?.queryType) throw invalidArgument('query.queryType is not set');
      const exec = runOf(req.namespace, executionOf(req));
      const R = enums.QueryRejectCondition;
      const condition = req.queryRejectCondition ?? R.QUERY_REJECT_CONDITION_UNSPECIFIED;
      const rejected =
        (condition === R.QUERY_REJECT_CONDITION_NOT_OPEN && !exec.isRunning) ||
        (condition === R.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY &&
          !exec.isRunning &&
          exec.status !== enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED);
      if (rejected) return { queryRejected: { status: exec.status } };
      // No task can carry the query yet: fail fast (real server: ErrWorkflowTaskNotScheduled).
      if (exec.hadNoWorkflowTask) {
        throw new RpcError(grpc.status.FAILED_PRECONDITION, 'Workflow task is not scheduled yet.', [
          { typeName: 'temporal.api.errordetails.v1.WorkflowNotReadyFailure', value: {} },
        ]);
      }
      // A query nobody answers gives up before the caller's deadline, and after at most a minute.
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(onAbort, Math.max(0, Math.min(60_000, ctx.deadline - 500 - Date.now())));
      try {
        const outcome = await exec.query(req.query, abort.signal);
        if (outcome.kind === 'answered') return { queryResult: outcome.result ?? { payloads: [] } };
        if (outcome.kind === 'failed') {
          throw new RpcError(grpc.status.INVALID_ARGUMENT, outcome.message, [
            {
              typeName: 'temporal.api.errordetails.v1.QueryFailedFailure',
              value: { failure: outcome.failure ?? null },
            },
          ]);
        }
        throw new RpcError(
          grpc.status.DEADLINE_EXCEEDED,
          'query timed out: no worker answered it; is a worker polling the task queue?',
        );
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onAbort);
      }
    },

    RespondQueryTaskCompleted: (req: ws.IRespondQueryTaskCompletedRequest) => {
      const token = decodeTaskToken(req.taskToken, ['q']);
      if (token.k !== 'q') throw invalidArgument('taskToken is not a query task token');
      engine.completeQueryTask(token.q, req);
      return {};
    },

    ListWorkflowExecutions: (req: ws.IListWorkflowExecutionsRequest) => {
      const ns = engine.namespace(req.namespace);
      const runs = engine.listRuns(ns, req.query ?? '');
      const pageSize = req.pageSize && req.pageSize > 0 ? req.pageSize : 1000;
      let offset = 0;
      if (req.nextPageToken && req.nextPageToken.length > 0) {
        offset = Number(Buffer.from(req.nextPageToken).toString('utf8'));
        if (!Number.isInteger(offset) || offset < 0) throw invalidArgument('nextPageToken is malformed');
      }
      const page = runs.slice(offset, offset + pageSize);
      const next =
        offset + page.length < runs.length ? Buffer.from(String(offset + page.length)) : Buffer.alloc(0);
      return { executions: page.map((exec) => engine.executionInfo(exec)), nextPageToken: next };
    },

    CountWorkflowExecutions: (req: ws.ICountWorkflowExecutionsRequest) => {
      const ns = engine.namespace(req.namespace);
      if (/\bgroup\s+by\b/i.test(req.query ?? '')) {
        throw invalidArgument('GROUP BY is not supported by this dev server');
      }
      return { count: engine.listRuns(ns, req.query ?? '').length, groups: [] };
    },

    GetSearchAttributes: () => ({ keys: allSearchAttributeTypes(engine, 'default') }),

    DescribeTaskQueue: (req: ws.IDescribeTaskQueueRequest) => {
      const ns = engine.namespace(req.namespace);
      const name = taskQueueName(req.taskQueue);
      const type =
        req.taskQueueType === enums.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY ? 'activity' : 'workflow';
      return {
        pollers: engine.matching.pollers(ns.name, name, type).map((p) => ({
          identity: p.identity,
          lastAccessTime: timestampFromMs(p.lastAccessTime),
          ratePerSecond: 100_000,
        })),
      };
    },

    ResetStickyTaskQueue: (req: ws.IResetStickyTaskQueueRequest) => {
      engine.namespace(req.namespace);
      return {};
    },

    ShutdownWorker: (req: ws.IShutdownWorkerRequest) => {
      engine.namespace(req.namespace);
      return {};
    },
  };

  function describeNamespace(ns: ReturnType<Engine['namespace']>): ws.IDescribeNamespaceResponse {
    return {
      namespaceInfo: {
        name: ns.name,
        state: enums.NamespaceState.NAMESPACE_STATE_REGISTERED,
        description: ns.description,
        ownerEmail: ns.ownerEmail,
        id: ns.id,
        supportsSchedules: false,
        capabilities: {
          eagerWorkflowStart: false,
          syncUpdate: false,
          asyncUpdate: false,
          workerHeartbeats: false,
          reportedProblemsSearchAttribute: false,
          workflowPause: false,
          standaloneActivities: false,
          workerPollCompleteOnShutdown: false,
        },
      },
      config: {
        workflowExecutionRetentionTtl: durationFromMs(ns.retentionMs),
        historyArchivalState: enums.ArchivalState.ARCHIVAL_STATE_DISABLED,
        visibilityArchivalState: enums.ArchivalState.ARCHIVAL_STATE_DISABLED,
      },
      isGlobalNamespace: false,
    };
  }
}

function allSearchAttributeTypes(engine: Engine, namespace: string): Record<string, number> {
  const out: Record<string, number> = {};
  const byName = Object.fromEntries(
    Object.entries(SEARCH_ATTRIBUTE_TYPE_NAMES).map(([k, v]) => [v, Number(k)]),
  );
  for (const [name, type] of Object.entries(SYSTEM_SEARCH_ATTRIBUTES)) out[name] = byName[type] ?? 0;
  if (engine.hasNamespace(namespace))
    for (const [name, type] of engine.namespace(namespace).searchAttributes) out[name] = type;
  return out;
}

export function operatorServiceHandlers(engine: Engine): Handlers {
  return {
    AddSearchAttributes: (req: temporal.api.operatorservice.v1.IAddSearchAttributesRequest) => {
      const ns = engine.namespace(req.namespace || 'default');
      if (!req.searchAttributes || Object.keys(req.searchAttributes).length === 0)
        throw invalidArgument('searchAttributes is not set');
      engine.addSearchAttributes(ns, req.searchAttributes);
      return {};
    },
    RemoveSearchAttributes: (req: temporal.api.operatorservice.v1.IRemoveSearchAttributesRequest) => {
      const ns = engine.namespace(req.namespace || 'default');
      for (const name of req.searchAttributes ?? []) {
        if (!ns.searchAttributes.delete(name))
          throw new RpcError(grpc.status.NOT_FOUND, `search attribute ${name} does not exist`);
      }
      return {};
    },
    ListSearchAttributes: (req: temporal.api.operatorservice.v1.IListSearchAttributesRequest) => {
      const ns = engine.namespace(req.namespace || 'default');
      const system = allSearchAttributeTypes(engine, '__none__');
      return {
        customAttributes: Object.fromEntries(ns.searchAttributes),
        systemAttributes: system,
        storageSchema: {},
      };
    },
  };
}

export function testServiceHandlers(engine: Engine): Handlers {
  const clock = engine.clock;
  const requireSkipping = () => {
    if (!clock.timeSkipping)
      throw new RpcError(
        grpc.status.FAILED_PRECONDITION,
        'time skipping is off on this server (started in dev-server mode)',
      );
  };
  return {
    LockTimeSkipping: () => {
      requireSkipping();
      clock.lock();
      return {};
    },
    UnlockTimeSkipping: () => {
      requireSkipping();
      clock.unlock();
      return {};
    },
    Sleep: async (req: temporal.api.testservice.v1.ISleepRequest, ctx: CallContext) => {
      await clock.sleepUntil(clock.now() + msFromDuration(req.duration), ctx.signal);
      return {};
    },
    SleepUntil: async (req: temporal.api.testservice.v1.ISleepUntilRequest, ctx: CallContext) => {
      await clock.sleepUntil(msFromTimestamp(req.timestamp) ?? clock.now(), ctx.signal);
      return {};
    },
    UnlockTimeSkippingWithSleep: async (req: temporal.api.testservice.v1.ISleepRequest, ctx: CallContext) => {
      requireSkipping();
      await clock.unlockWithSleep(msFromDuration(req.duration), ctx.signal);
      return {};
    },
    GetCurrentTime: () => ({ time: timestampFromMs(clock.now()) }),
  };
}

export function healthHandlers(): Handlers {
  return {
    Check: () => ({ status: 1 /* SERVING */ }),
  };
}

export { num, type IPayloads };
