/**
 * Matching: task queues with long-polling waiters. A task is offered to a poller only at the moment of
 * dispatch (`Task.dispatch`), which either starts it and returns the poll response, or says it went stale
 * (cancelled activity, closed workflow, ...). A poller whose call was cancelled is never handed a task, and
 * every poll is answered empty shortly before its deadline, as the real matching service does.
 */

export interface PollerInfo {
  identity: string;
}

export interface Task<R> {
  /** Start the task for this poller and return the poll response, or undefined if the task is stale. */
  dispatch(poller: PollerInfo): R | undefined;
}

interface Waiter<R> {
  poller: PollerInfo;
  resolve: (response: R | undefined) => void;
  done: boolean;
  /** Clears the deadline timer and the cancellation listener. */
  cleanup: () => void;
}

class TaskQueue<R> {
  readonly tasks: Task<R>[] = [];
  readonly waiters: Waiter<R>[] = [];
  lastPollTime = 0;
  readonly pollers = new Map<string, number>();
}

export type TaskQueueType = 'workflow' | 'activity';

/** Longest time a poll is held, as the real matching service (60 s); the caller's deadline may shorten it. */
export const MAX_POLL_MS = 60_000;
/** Answer this long before the caller's deadline so that the empty response arrives in time. */
const DEADLINE_MARGIN_MS = 1_000;

export class Matching {
  private readonly queues = new Map<string, TaskQueue<unknown>>();
  private readonly openWaiters = new Set<Waiter<unknown>>();

  private queue<R>(namespace: string, name: string, type: TaskQueueType): TaskQueue<R> {
    const key = `${namespace}\u0000${type}\u0000${name}`;
    let q = this.queues.get(key);
    if (!q) {
      q = new TaskQueue<unknown>();
      this.queues.set(key, q);
    }
    return q as TaskQueue<R>;
  }

  addTask<R>(namespace: string, name: string, type: TaskQueueType, task: Task<R>): void {
    const q = this.queue<R>(namespace, name, type);
    while (q.waiters.length > 0) {
      const waiter = q.waiters.shift()!;
      if (waiter.done) continue;
      const response = task.dispatch(waiter.poller);
      if (response === undefined) return; // stale before anyone saw it
      waiter.done = true;
      waiter.cleanup();
      this.openWaiters.delete(waiter as Waiter<unknown>);
      waiter.resolve(response);
      return;
    }
    q.tasks.push(task);
  }

  /** Long-polls for a task; resolves undefined (an empty response) at the deadline or on cancellation. */
  poll<R>(
    namespace: string,
    name: string,
    type: TaskQueueType,
    poller: PollerInfo,
    deadline: number,
    signal: AbortSignal,
  ): Promise<R | undefined> {
    const q = this.queue<R>(namespace, name, type);
    const now = Date.now();
    q.lastPollTime = now;
    q.pollers.set(poller.identity, now);
    while (q.tasks.length > 0) {
      const task = q.tasks.shift()!;
      const response = task.dispatch(poller);
      if (response !== undefined) return Promise.resolve(response);
    }
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter<R> = {
        poller,
        resolve,
        done: false,
        cleanup: () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', finish);
        },
      };
      const finish = () => {
        if (waiter.done) return;
        waiter.done = true;
        waiter.cleanup();
        this.openWaiters.delete(waiter as Waiter<unknown>);
        const i = q.waiters.indexOf(waiter);
        if (i >= 0) q.waiters.splice(i, 1);
        resolve(undefined);
      };
      const wait = Math.max(0, Math.min(MAX_POLL_MS, deadline - DEADLINE_MARGIN_MS - Date.now()));
      const timer = setTimeout(finish, wait);
      signal.addEventListener('abort', finish);
      q.waiters.push(waiter);
      this.openWaiters.add(waiter as Waiter<unknown>);
    });
  }

  /** Pollers seen on a queue recently, for DescribeTaskQueue. */
  pollers(
    namespace: string,
    name: string,
    type: TaskQueueType,
  ): { identity: string; lastAccessTime: number }[] {
    const q = this.queue(namespace, name, type);
    return [...q.pollers].map(([identity, lastAccessTime]) => ({ identity, lastAccessTime }));
  }

  /** Polls waiting on a queue right now (diagnostics and tests). */
  waitingPolls(namespace: string, name: string, type: TaskQueueType): number {
    return this.queue(namespace, name, type).waiters.filter((w) => !w.done).length;
  }

  backlog(namespace: string, name: string, type: TaskQueueType): number {
    return this.queue(namespace, name, type).tasks.length;
  }

  /** Answers every open poll empty (server shutdown). */
  close(): void {
    for (const waiter of [...this.openWaiters]) {
      if (waiter.done) continue;
      waiter.done = true;
      waiter.resolve(undefined);
    }
    this.openWaiters.clear();
  }
}
