/**
 * The client half of the benchmark: start `count` workflows at once and await every result. Used by the
 * starter child process (bench/starter.ts) and, with `--client inline`, by the benchmark process itself.
 */
import type { Client } from '@temporalio/client';

export interface BatchRequest {
  taskQueue: string;
  workflowType: string;
  /** Workflow ids are `${idPrefix}-${i}`. */
  idPrefix: string;
  count: number;
  /** Extra workflow arguments after the input string. */
  extraArgs: unknown[];
}

export interface BatchResult {
  completed: number;
  failures: string[];
  elapsedMs: number;
}

export async function runBatch(client: Client, req: BatchRequest): Promise<BatchResult> {
  const t0 = performance.now();
  const outcomes = await Promise.allSettled(
    Array.from({ length: req.count }, async (_, i) => {
      const workflowId = `${req.idPrefix}-${i}`;
      const input = `in-${i}`;
      const result: unknown = await client.workflow.execute(req.workflowType, {
        taskQueue: req.taskQueue,
        workflowId,
        args: [input, ...req.extraArgs],
      });
      if (result !== input)
        throw new Error(
          `${workflowId} returned ${JSON.stringify(result)}, expected ${JSON.stringify(input)}`,
        );
    }),
  );
  const elapsedMs = performance.now() - t0;
  const failures = outcomes.flatMap((o) =>
    o.status === 'rejected'
      ? [o.reason instanceof Error ? `${o.reason.name}: ${o.reason.message}` : String(o.reason)]
      : [],
  );
  return { completed: outcomes.length - failures.length, failures, elapsedMs };
}
