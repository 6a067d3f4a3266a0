/**
 * Five-field cron expressions (`minute hour day-of-month month day-of-week`) for backup schedules and
 * recurring freeze windows, with the gaps between their runs so that configuration rules can compare a
 * schedule with a retention or a recovery point objective. Deterministic: no I/O, no clock.
 *
 * Syntax: `*`, numbers, ranges `a-b`, steps `*\/n` and `a-b/n`, lists `a,b`, month names `JAN`..`DEC`,
 * day names `SUN`..`SAT` (0 and 7 are both Sunday), and the macros `@hourly`, `@daily`, `@midnight`,
 * `@weekly`, `@monthly`, `@yearly`, `@annually`. As in Vixie cron, when both day-of-month and day-of-week
 * are restricted, a day matches if either does.
 */
import { z } from 'zod';

export interface CronSchedule {
  /** The expression as written. */
  source: string;
  minutes: readonly number[];
  hours: readonly number[];
  daysOfMonth: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 0 = Sunday .. 6 = Saturday. */
  daysOfWeek: ReadonlySet<number>;
  dayOfMonthRestricted: boolean;
  dayOfWeekRestricted: boolean;
}

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** Offset of names[0]: months are 1-based. */
  namesFrom?: number;
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, namesFrom: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAY_NAMES, namesFrom: 0 },
];

export class CronSyntaxError extends Error {
  override name = 'CronSyntaxError';
}

function parseValue(text: string, spec: FieldSpec): number {
  const upper = text.toUpperCase();
  const named = spec.names?.indexOf(upper) ?? -1;
  if (named >= 0) return named + (spec.namesFrom ?? 0);
  if (!/^\d+$/.test(text)) throw new CronSyntaxError(`${spec.name}: "${text}" is not a number`);
  const value = Number(text);
  if (value < spec.min || value > spec.max) {
    throw new CronSyntaxError(`${spec.name}: ${value} is outside ${spec.min}-${spec.max}`);
  }
  return value;
}

function parseField(text: string, spec: FieldSpec): { values: Set<number>; restricted: boolean } {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const [range = '', stepText, extra] = part.split('/');
    if (extra !== undefined || range === '')
      throw new CronSyntaxError(`${spec.name}: "${part}" is malformed`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        throw new CronSyntaxError(`${spec.name}: step "${stepText}" must be a positive number`);
      }
      step = Number(stepText);
    }
    let from: number;
    let to: number;
    if (range === '*') {
      from = spec.min;
      to = spec.max;
    } else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      from = parseValue(a, spec);
      to = parseValue(b, spec);
      if (from > to) throw new CronSyntaxError(`${spec.name}: range ${range} runs backwards`);
    } else {
      from = parseValue(range, spec);
      to = stepText === undefined ? from : spec.max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  // Vixie cron: a field that starts with `*` (also `*/2`) counts as unrestricted for the day-matching rule.
  return { values, restricted: !text.startsWith('*') };
}

/** Parses `expression`; throws `CronSyntaxError` naming the field at fault. */
export function parseCron(expression: string): CronSchedule {
  const source = expression.trim();
  const expanded = MACROS[source.toLowerCase()] ?? source;
  if (expanded.startsWith('@')) throw new CronSyntaxError(`unknown macro "${source}"`);
  const parts = expanded.split(/\s+/);
  if (parts.length !== 5) {
    throw new CronSyntaxError(
      `has ${parts.length} fields; write five: minute hour day-of-month month day-of-week, e.g. "0 2,14 * * *"`,
    );
  }
  const [minute, hour, dom, month, dow] = parts.map((part, i) => parseField(part, FIELDS[i]!)) as [
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
    ReturnType<typeof parseField>,
  ];
  const daysOfWeek = new Set([...dow.values].map((d) => d % 7));
  return {
    source,
    minutes: [...minute.values].sort((a, b) => a - b),
    hours: [...hour.values].sort((a, b) => a - b),
    daysOfMonth: dom.values,
    months: month.values,
    daysOfWeek,
    dayOfMonthRestricted: dom.restricted,
    dayOfWeekRestricted: dow.restricted,
  };
}

/** Whether the schedule runs on a calendar day (month 1-12, day of week 0 = Sunday). */
export function cronRunsOnDay(
  s: CronSchedule,
  month: number,
  dayOfMonth: number,
  dayOfWeek: number,
): boolean {
  if (!s.months.has(month)) return false;
  const domMatch = s.daysOfMonth.has(dayOfMonth);
  const dowMatch = s.daysOfWeek.has(dayOfWeek);
  if (s.dayOfMonthRestricted && s.dayOfWeekRestricted) return domMatch || dowMatch;
  return domMatch && dowMatch;
}

export interface CronGaps {
  /** Longest time between two consecutive runs, in ms; `Infinity` when it runs less than twice in 4 years. */
  maxGapMs: number;
  /** Shortest time between two consecutive runs, in ms; `Infinity` when it runs less than twice in 4 years. */
  minGapMs: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** 2024-01-01 UTC: four years from here contain one 29 February and every weekday/date combination. */
const WINDOW_START = Date.UTC(2024, 0, 1);
const WINDOW_DAYS = 4 * 365 + 1;

/**
 * The shortest and longest gap between runs, over four calendar years in the schedule's own wall-clock
 * time (daylight-saving shifts are ignored: they move a run by an hour at most).
 */
export function cronGaps(s: CronSchedule): CronGaps {
  const dayFires: number[] = [];
  for (const h of s.hours) for (const m of s.minutes) dayFires.push((h * 60 + m) * MINUTE_MS);
  let intraMin = Infinity;
  let intraMax = 0;
  for (let i = 1; i < dayFires.length; i++) {
    const gap = dayFires[i]! - dayFires[i - 1]!;
    intraMin = Math.min(intraMin, gap);
    intraMax = Math.max(intraMax, gap);
  }
  let minGapMs = Infinity;
  let maxGapMs = 0;
  let runs = 0;
  let lastRun: number | undefined;
  for (let day = 0; day < WINDOW_DAYS; day++) {
    const start = WINDOW_START + day * DAY_MS;
    const date = new Date(start);
    if (!cronRunsOnDay(s, date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCDay())) continue;
    const first = start + dayFires[0]!;
    if (lastRun !== undefined) {
      minGapMs = Math.min(minGapMs, first - lastRun);
      maxGapMs = Math.max(maxGapMs, first - lastRun);
    }
    if (dayFires.length > 1) {
      minGapMs = Math.min(minGapMs, intraMin);
      maxGapMs = Math.max(maxGapMs, intraMax);
    }
    lastRun = start + dayFires[dayFires.length - 1]!;
    runs += dayFires.length;
  }
  if (runs < 2) return { maxGapMs: Infinity, minGapMs: Infinity };
  return { maxGapMs, minGapMs };
}

/** A cron expression in the configuration; kept as written, checked here. */
export const CronExpression = z.string().superRefine((text, ctx) => {
  try {
    const schedule = parseCron(text);
    if (cronGaps(schedule).maxGapMs === Infinity) {
      ctx.addIssue({ code: 'custom', message: `cron "${text}" runs less than twice in four years` });
    }
  } catch (err) {
    if (!(err instanceof CronSyntaxError)) throw err;
    ctx.addIssue({ code: 'custom', message: `cron "${text}" ${err.message}` });
  }
});
