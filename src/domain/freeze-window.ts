/**
 * Freeze windows: periods in which releases to some environments wait (L2). A recurring window starts at
 * every firing of its cron expression and lasts its duration; a one-off window runs from `start` to `end`.
 * Both are read in the window's own time zone, or the organization's.
 *
 * Deterministic zone: imported by workflow code. No I/O and no clock: the instant to judge is an argument.
 */
import { cronRunsOnDay, parseCron } from '../config/cron';
import type { CronSchedule } from '../config/cron';
import type { FreezeWindow } from '../config/platform-config';
import { instantOf, zoneOffsetMs } from '../config/time-zone';

/** The freeze that holds a release back. */
export interface ActiveFreeze {
  /** Name of the window in force at the queried instant (the one that started first). */
  window: string;
  reason: string | null;
  /** When that window's current occurrence started (epoch ms). */
  startedAtMs: number;
  /**
   * When the release may go: the end of the whole chain of overlapping or touching windows (epoch ms). A
   * chain is followed for at most 1000 links and two years, so windows that never end still give an end.
   */
  endsAtMs: number;
}

/** One occurrence of a window, `[startMs, endMs)`. */
interface Occurrence {
  window: FreezeWindow;
  startMs: number;
  endMs: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/**
 * Every instant of a local calendar day lies within this margin of the day read as UTC: UTC offsets run
 * from -12h to +14h.
 */
const ZONE_MARGIN_MS = 14 * 3_600_000;
/**
 * How far a chain is followed. Windows that together never end (a cron firing more often than its window
 * lasts) still yield a finite end; no real freeze is this long.
 */
const MAX_CHAIN_LINKS = 1_000;
const MAX_CHAIN_MS = 2 * 366 * DAY_MS;

/**
 * The freeze in force for a release to `environment` at `atMs`, or null. A hotfix passes windows with
 * allowHotfixes. When windows overlap or chain (one starts before another ends), endsAtMs is the end of the
 * whole chain, so a release that waits until endsAtMs is not frozen again at once.
 *
 * Windows are `[start, end)`: a release at the very instant a window ends is free. Recurring windows fire
 * at minute resolution in their zone's wall-clock time: a firing that falls into a daylight-saving gap
 * happens as if the clock had not jumped (02:30 on the spring-forward night is 03:30 by the new clock), and
 * a wall-clock time that happens twice on the fall-back night fires once, the first time.
 *
 * Pure and idempotent. Throws a `RangeError` for a window the configuration schema would have refused (a
 * one-off start or end that is not an ISO date-time, an unknown time zone) and a `CronSyntaxError` for a
 * malformed cron expression: configuration is validated before workflow code sees it, so either is a bug.
 */
export function activeFreeze(
  windows: readonly FreezeWindow[],
  query: { environment: string; atMs: number; hotfix: boolean; defaultTimeZone: string },
): ActiveFreeze | null {
  if (!Number.isFinite(query.atMs))
    throw new RangeError(`atMs must be an epoch time in ms, not ${query.atMs}`);
  const applicable = windows
    .filter((w) => w.environments.includes(query.environment) && !(query.hotfix && w.allowHotfixes))
    .map((w) => compile(w, query.defaultTimeZone));
  const occurrencesAt = (t: number): Occurrence[] =>
    applicable.flatMap((w) => {
      const o = w.occurrenceAt(t);
      return o ? [o] : [];
    });

  const inForce = occurrencesAt(query.atMs);
  const first = inForce.reduce<Occurrence | undefined>(
    (a, b) => (a && a.startMs <= b.startMs ? a : b),
    undefined,
  );
  if (!first) return null;

  let endsAtMs = Math.max(...inForce.map((o) => o.endMs));
  for (let link = 0; link < MAX_CHAIN_LINKS && endsAtMs - query.atMs < MAX_CHAIN_MS; link++) {
    // A window in force at the instant the chain ends would freeze the waiting release again.
    const next = occurrencesAt(endsAtMs);
    if (next.length === 0) break;
    endsAtMs = Math.max(...next.map((o) => o.endMs));
  }
  return {
    window: first.window.name,
    reason: first.window.reason ?? null,
    startedAtMs: first.startMs,
    endsAtMs,
  };
}

/** A time zone with a memory of the offsets already looked up. */
interface ZoneClock {
  zone: string;
  offsetAt(epochMs: number): number;
}

interface CompiledWindow {
  /** The occurrence in force at `t` that ends last, or undefined. */
  occurrenceAt(t: number): Occurrence | undefined;
}

function compile(window: FreezeWindow, defaultTimeZone: string): CompiledWindow {
  const zone = window.timezone ?? defaultTimeZone;
  if (window.kind === 'once') {
    const startMs = instantOf(window.start, zone);
    const endMs = instantOf(window.end, zone);
    if (startMs === undefined || endMs === undefined) {
      throw new RangeError(
        `freeze window "${window.name}": start "${window.start}" and end "${window.end}" must be ISO date-times`,
      );
    }
    return { occurrenceAt: (t) => (startMs <= t && t < endMs ? { window, startMs, endMs } : undefined) };
  }
  const schedule = parseCron(window.cron);
  const durationMs = window.duration;
  // Following a chain asks about neighbouring days again and again; Intl lookups are the expensive part.
  const offsets = new Map<number, number>();
  const clock: ZoneClock = {
    zone,
    offsetAt(ms) {
      let offset = offsets.get(ms);
      if (offset === undefined) {
        offset = zoneOffsetMs(zone, ms);
        offsets.set(ms, offset);
      }
      return offset;
    },
  };
  return {
    occurrenceAt(t) {
      if (durationMs <= 0) return undefined;
      const startMs = latestFiring(schedule, clock, t, t - durationMs);
      return startMs === undefined ? undefined : { window, startMs, endMs: startMs + durationMs };
    },
  };
}

/**
 * The latest firing `s` of `schedule` in `zone` with `after < s <= atMs`, or undefined. Walks local
 * calendar days backwards from the day of `atMs`: one cheap day test per day of the window, then on a day
 * that fires at most 24 + 60 steps (one per firing of the day when its UTC offset changes). A window of
 * 366 days costs a few hundred steps.
 */
function latestFiring(
  schedule: CronSchedule,
  clock: ZoneClock,
  atMs: number,
  after: number,
): number | undefined {
  // From a day that is surely not before the local day of `atMs`, and one more: around a daylight-saving
  // change a wall-clock time of the next day can map to an instant that is not later than `atMs`.
  let day = Math.floor((atMs + ZONE_MARGIN_MS) / DAY_MS) * DAY_MS + DAY_MS;
  for (; day + DAY_MS + ZONE_MARGIN_MS > after; day -= DAY_MS) {
    const date = new Date(day);
    if (!cronRunsOnDay(schedule, date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCDay())) continue;
    const found = latestFiringOnDay(schedule, clock, day, atMs);
    if (found !== undefined) return found > after ? found : undefined;
  }
  return undefined;
}

/** The latest firing on the local day starting at `day` (local midnight read as UTC) that is `<= atMs`. */
function latestFiringOnDay(
  schedule: CronSchedule,
  clock: ZoneClock,
  day: number,
  atMs: number,
): number | undefined {
  const offsetBefore = clock.offsetAt(day - ZONE_MARGIN_MS);
  const offsetAfter = clock.offsetAt(day + DAY_MS + ZONE_MARGIN_MS);
  if (offsetBefore === offsetAfter) {
    // No offset change near this day: instants grow with the wall clock, so the latest firing is the last
    // hour and minute not after the wall-clock time of `atMs`; at most 24 + 60 steps.
    const lastMinute = Math.floor((atMs + offsetBefore - day) / MINUTE_MS);
    for (let h = schedule.hours.length - 1; h >= 0; h--) {
      const hour = schedule.hours[h]!;
      if (hour * 60 > lastMinute) continue;
      for (let m = schedule.minutes.length - 1; m >= 0; m--) {
        const minuteOfDay = hour * 60 + schedule.minutes[m]!;
        if (minuteOfDay <= lastMinute) return day + minuteOfDay * MINUTE_MS - offsetBefore;
      }
    }
    return undefined;
  }
  // The offset changes on or next to this day: the wall clock skips or repeats around `change`.
  const change = offsetChange(clock, day - ZONE_MARGIN_MS, day + DAY_MS + ZONE_MARGIN_MS, offsetBefore);
  let latest: number | undefined;
  for (const h of schedule.hours) {
    for (const m of schedule.minutes) {
      const wall = day + (h * 60 + m) * MINUTE_MS;
      const early = wall - offsetBefore;
      const late = wall - offsetAfter;
      // The reading under the old offset when it is real (a repeated time fires the first time), else the
      // one under the new offset; a skipped time has neither and fires as if the clock had not jumped.
      const instant = early < change ? early : late >= change ? late : early;
      if (instant <= atMs && (latest === undefined || instant > latest)) latest = instant;
    }
  }
  return latest;
}

/** The first second in `(from, to]` whose offset is no longer `offsetFrom`; the offset at `to` differs. */
function offsetChange(clock: ZoneClock, from: number, to: number, offsetFrom: number): number {
  let lo = from;
  let hi = to;
  while (hi - lo > 1_000) {
    const mid = lo + Math.floor((hi - lo) / 2_000) * 1_000;
    if (clock.offsetAt(mid) === offsetFrom) lo = mid;
    else hi = mid;
  }
  return hi;
}
