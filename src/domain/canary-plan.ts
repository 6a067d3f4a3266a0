/**
 * Plans of the gradual strategies: the traffic steps of a canary release (S3) with how long each is held
 * under metric watch, and the batches of a rolling update (S2).
 *
 * Deterministic zone: imported by workflow code. Pure functions of their arguments.
 */

/** One canary step: the share of traffic on the new version, held for `holdMs` over `samples` samples. */
export interface CanaryStep {
  percent: number;
  holdMs: number;
  samples: number;
}

function assertWholeMs(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be a whole number of milliseconds, at least ${min}; got ${value}`);
  }
}

/**
 * The canary steps (percent) of a strategy, and how long each is held: at least `stepDuration` and at
 * least one metric interval (`sampleIntervalMs`), rounded up to whole sample intervals. Returns the
 * samples per step too.
 *
 * The steps must be whole percentages from 1 to 100, strictly increasing and ending at 100, as the
 * configuration schema demands; `stepDurationMs` may be 0 (one sample per step). Throws a `RangeError`
 * naming the first offending value otherwise.
 */
export function canaryPlan(input: {
  steps: readonly number[];
  stepDurationMs: number;
  sampleIntervalMs: number;
}): CanaryStep[] {
  const { steps, stepDurationMs, sampleIntervalMs } = input;
  if (steps.length === 0) throw new RangeError('a canary needs at least one step, e.g. [5, 25, 50, 100]');
  steps.forEach((percent, i) => {
    if (!Number.isInteger(percent) || percent < 1 || percent > 100) {
      throw new RangeError(`canary step ${i + 1} (${percent}) must be a whole percentage from 1 to 100`);
    }
    const previous = steps[i - 1];
    if (previous !== undefined && percent <= previous) {
      throw new RangeError(
        `canary step ${i + 1} (${percent}) must be greater than the step before (${previous})`,
      );
    }
  });
  if (steps[steps.length - 1] !== 100) {
    throw new RangeError(`the last canary step must be 100 (all traffic), not ${steps[steps.length - 1]}`);
  }
  assertWholeMs('stepDurationMs', stepDurationMs, 0);
  assertWholeMs('sampleIntervalMs', sampleIntervalMs, 1);

  const samples = Math.max(1, Math.ceil(stepDurationMs / sampleIntervalMs));
  return steps.map((percent) => ({ percent, holdMs: samples * sampleIntervalMs, samples }));
}

/**
 * Batches of a rolling update: `items` split into consecutive batches of `batchSize`. The last batch holds
 * the rest and may be smaller; no items give no batches. Throws a `RangeError` when `batchSize` is not a
 * whole number of at least 1.
 */
export function rollingBatches<T>(items: readonly T[], batchSize: number): T[][] {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a whole number of at least 1; got ${batchSize}`);
  }
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += batchSize) batches.push(items.slice(i, i + batchSize));
  return batches;
}
