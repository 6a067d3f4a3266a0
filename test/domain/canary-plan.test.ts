/** Canary steps with their hold times, and rolling-update batches. */
import { describe, expect, it } from 'vitest';
import { canaryPlan, rollingBatches } from '../../src/domain/canary-plan';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

describe('canaryPlan', () => {
  it.each([
    ['the shipped canary: 10m steps, 1m samples', [5, 25, 50, 100], 10 * MINUTE, MINUTE, 10 * MINUTE, 10],
    ['a step shorter than a sample is held one sample', [50, 100], 20 * SECOND, MINUTE, MINUTE, 1],
    ['no step duration: one sample', [100], 0, 30 * SECOND, 30 * SECOND, 1],
    ['rounded up to whole samples', [10, 100], 10 * MINUTE + 1, MINUTE, 11 * MINUTE, 11],
    ['a sample that does not divide the step', [1, 100], 10 * MINUTE, 7 * MINUTE, 14 * MINUTE, 2],
    ['exactly one sample', [20, 100], 5 * MINUTE, 5 * MINUTE, 5 * MINUTE, 1],
  ])('%s', (_, steps, stepDurationMs, sampleIntervalMs, holdMs, samples) => {
    expect(canaryPlan({ steps, stepDurationMs, sampleIntervalMs })).toEqual(
      steps.map((percent) => ({ percent, holdMs, samples })),
    );
  });

  it.each([
    ['no steps', [], MINUTE, MINUTE, /at least one step/],
    ['a step of 0%', [0, 100], MINUTE, MINUTE, /step 1 \(0\) must be a whole percentage from 1 to 100/],
    ['a step above 100%', [50, 101], MINUTE, MINUTE, /step 2 \(101\) must be a whole percentage/],
    ['a fractional step', [2.5, 100], MINUTE, MINUTE, /step 1 \(2\.5\) must be a whole percentage/],
    ['a step that is not a number', [Number.NaN, 100], MINUTE, MINUTE, /step 1 \(NaN\)/],
    [
      'steps that shrink',
      [50, 25, 100],
      MINUTE,
      MINUTE,
      /step 2 \(25\) must be greater than the step before \(50\)/,
    ],
    ['a repeated step', [50, 50, 100], MINUTE, MINUTE, /step 2 \(50\) must be greater/],
    ['steps that stop short of 100%', [5, 25, 50], MINUTE, MINUTE, /last canary step must be 100/],
    [
      'a negative step duration',
      [100],
      -1,
      MINUTE,
      /stepDurationMs must be a whole number of milliseconds, at least 0/,
    ],
    ['a fractional step duration', [100], 1.5, MINUTE, /stepDurationMs/],
    ['an infinite step duration', [100], Number.POSITIVE_INFINITY, MINUTE, /stepDurationMs/],
    ['a zero sample interval', [100], MINUTE, 0, /sampleIntervalMs must be .* at least 1/],
    ['a sample interval that is not a number', [100], MINUTE, Number.NaN, /sampleIntervalMs/],
  ])('refuses %s', (_, steps, stepDurationMs, sampleIntervalMs, message) => {
    const plan = () => canaryPlan({ steps, stepDurationMs, sampleIntervalMs });
    expect(plan).toThrow(RangeError);
    expect(plan).toThrow(message);
  });
});

describe('rollingBatches', () => {
  it.each([
    ['one by one', ['a', 'b', 'c'], 1, [['a'], ['b'], ['c']]],
    ['a short last batch', ['a', 'b', 'c', 'd', 'e'], 2, [['a', 'b'], ['c', 'd'], ['e']]],
    [
      'even batches',
      ['a', 'b', 'c', 'd'],
      2,
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
    ],
    ['one batch when the size covers everything', ['a', 'b'], 5, [['a', 'b']]],
    ['no items, no batches', [], 3, []],
  ])('%s', (_, items, batchSize, expected) => {
    expect(rollingBatches(items, batchSize)).toEqual(expected);
  });

  it('keeps the items themselves and leaves the input alone', () => {
    const items = [{ id: 1 }, { id: 2 }, { id: 3 }] as const;
    const batches = rollingBatches(items, 2);
    expect(batches[0]![0]).toBe(items[0]);
    expect(batches[1]).toEqual([{ id: 3 }]);
    expect(items).toHaveLength(3);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses a batch size of %s', (batchSize) => {
    expect(() => rollingBatches(['a'], batchSize)).toThrow(RangeError);
    expect(() => rollingBatches(['a'], batchSize)).toThrow(
      `batchSize must be a whole number of at least 1; got ${batchSize}`,
    );
  });
});
