/**
 * Activities of the release itself (no external system): the settings a release runs under, drawn from
 * the worker's platform configuration, and the wall-clock age of a database snapshot for the RPO check.
 */
import { z } from 'zod';
import type { PlatformConfig } from '../../config/platform-config';
import {
  ReleaseSettingsError,
  deriveReleaseSettings,
  type ReleaseSettings,
} from '../../domain/release-settings';
import { FailureType, failure } from '../../errors';
import { StrategyName } from '../../schemas/release';
import { parseActivityInput } from '../activity-support';

/** Input of `loadReleaseSettings`. */
export const LoadReleaseSettingsInput = z.strictObject({
  strategy: StrategyName.optional(),
  hotfix: z.boolean(),
});
export type LoadReleaseSettingsInput = z.infer<typeof LoadReleaseSettingsInput>;

/** Input of `checkSnapshotAge`: when the snapshot was taken, and the RPO it must meet. */
export const CheckSnapshotAgeInput = z.strictObject({
  takenAt: z.iso.datetime({ offset: true }),
  maxAgeMs: z.number().int().positive(),
});
export type CheckSnapshotAgeInput = z.infer<typeof CheckSnapshotAgeInput>;

export interface CheckSnapshotAgeResult {
  ageMs: number;
  stale: boolean;
  checkedAt: string;
}

export interface ReleaseActivitiesOptions {
  config: PlatformConfig;
  /** Wall clock in ms; `Date.now` by default. */
  clock?: () => number;
}

/**
 * Builds the release's own activities. Both only read and are idempotent.
 *
 * - `loadReleaseSettings`: the settings of one release (see `deriveReleaseSettings`); a configuration that
 *   cannot carry the release asked for fails with a non-retryable `PolicyViolation` whose message says what
 *   to change.
 * - `checkSnapshotAge`: the age of a snapshot by the worker's wall clock. The RPO is about real time, which
 *   the workflow's clock is not in a time-skipping test; a rollback checks the age before it changes
 *   anything, so a stale snapshot is refused before the first step.
 */
export function createReleaseActivities(options: ReleaseActivitiesOptions) {
  const clock = options.clock ?? Date.now;
  return {
    loadReleaseSettings(input: LoadReleaseSettingsInput): Promise<ReleaseSettings> {
      const request = parseActivityInput(LoadReleaseSettingsInput, input, 'loadReleaseSettings');
      try {
        return Promise.resolve(deriveReleaseSettings(options.config, request));
      } catch (err) {
        if (err instanceof ReleaseSettingsError) throw failure(FailureType.PolicyViolation, err.message);
        throw err;
      }
    },

    checkSnapshotAge(input: CheckSnapshotAgeInput): Promise<CheckSnapshotAgeResult> {
      const { takenAt, maxAgeMs } = parseActivityInput(CheckSnapshotAgeInput, input, 'checkSnapshotAge');
      const now = clock();
      const ageMs = Math.max(0, now - Date.parse(takenAt));
      return Promise.resolve({ ageMs, stale: ageMs > maxAgeMs, checkedAt: new Date(now).toISOString() });
    },
  };
}

export type ReleaseActivities = ReturnType<typeof createReleaseActivities>;
