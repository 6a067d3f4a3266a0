/**
 * Durations as people write them in configuration: `90s`, `10m`, `12h`, `30d`, `2w`, or a sum such as
 * `1h30m`. Parsed to milliseconds, so the rest of the code does arithmetic and never parses text again.
 * Deterministic: no I/O, usable from workflow code.
 */
import { z } from 'zod';

const UNIT_MS = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
} as const;
type Unit = keyof typeof UNIT_MS;

const WHOLE = /^(?:\d+(?:ms|s|m|h|d|w))+$/;
const PART = /(\d+)(ms|s|m|h|d|w)/g;

/** Milliseconds in `text`, or `undefined` when it is not a duration such as `10m` or `1h30m`. */
export function parseDuration(text: string): number | undefined {
  if (!WHOLE.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART)) total += Number(amount) * UNIT_MS[unit as Unit];
  return Number.isSafeInteger(total) ? total : undefined;
}

/** The shortest exact spelling of `ms`: `600000` → `10m`, `5400000` → `1h30m`, `0` → `0s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const size = UNIT_MS[unit];
    const amount = Math.floor(rest / size);
    if (amount > 0) {
      out += `${amount}${unit}`;
      rest -= amount * size;
    }
  }
  return out;
}

export interface DurationBounds {
  /** Smallest accepted value, as a duration string (`1s`). Default: anything above zero. */
  min?: string;
  /** Largest accepted value, as a duration string (`365d`). */
  max?: string;
  /** Accept `0s` (for "no pause"). */
  allowZero?: boolean;
}

/**
 * A duration written as text in the configuration, parsed to milliseconds. Fails with a message naming
 * the accepted units, or the bound that was crossed.
 */
export function Duration(bounds: DurationBounds = {}) {
  const min = bounds.min === undefined ? undefined : parseDuration(bounds.min);
  const max = bounds.max === undefined ? undefined : parseDuration(bounds.max);
  return (
    z
      .string({
        error: (issue) =>
          issue.input === undefined ? 'is required' : 'must be a duration such as 10m, 12h or 30d',
      })
      // Issues are raised with `continue: true` so that a union around a duration (a backup schedule) still
      // reports this message instead of a generic "no option matched".
      .transform((text, ctx) => {
        const ms = parseDuration(text.trim());
        if (ms === undefined) {
          ctx.addIssue({
            code: 'custom',
            message: 'must be a duration such as 90s, 10m, 12h, 30d or 1h30m (units: ms, s, m, h, d, w)',
            continue: true,
          });
          return z.NEVER;
        }
        if (ms === 0 && !bounds.allowZero) {
          ctx.addIssue({ code: 'custom', message: 'must be longer than zero', continue: true });
          return z.NEVER;
        }
        if (min !== undefined && ms < min && !(ms === 0 && bounds.allowZero)) {
          ctx.addIssue({ code: 'custom', message: `must be at least ${bounds.min}`, continue: true });
          return z.NEVER;
        }
        if (max !== undefined && ms > max) {
          ctx.addIssue({ code: 'custom', message: `must be at most ${bounds.max}`, continue: true });
          return z.NEVER;
        }
        return ms;
      })
  );
}
