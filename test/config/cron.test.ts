/** Cron expressions, durations and time zones of the configuration: parsing, gaps, instants. */
import { describe, expect, it } from 'vitest';
import { CronExpression, CronSyntaxError, cronGaps, cronRunsOnDay, parseCron } from '../../src/config/cron';
import { Duration, formatDuration, parseDuration } from '../../src/config/duration';
import { TimeZone, instantOf, zoneOffsetMs } from '../../src/config/time-zone';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('cron expressions', () => {
  it.each([
    ['0 1,13 * * *', 12 * HOUR, 12 * HOUR],
    ['0 3 * * *', DAY, DAY],
    ['*/15 * * * *', 15 * MINUTE, 15 * MINUTE],
    ['0 9-17/4 * * 1-5', 64 * HOUR, 4 * HOUR], // 09, 13, 17 on weekdays: Friday 17:00 to Monday 09:00
    ['0 17 * * 5', 7 * DAY, 7 * DAY],
    ['0 0 1 * *', 31 * DAY, 28 * DAY],
    ['@hourly', HOUR, HOUR],
    ['@daily', DAY, DAY],
    ['@weekly', 7 * DAY, 7 * DAY],
  ])('%s runs at most %d ms and at least %d ms apart', (expr, max, min) => {
    expect(cronGaps(parseCron(expr))).toEqual({ maxGapMs: max, minGapMs: min });
  });

  it('reads month and day names', () => {
    // Sundays of January and July: a week apart inside a month, months apart from July to January.
    const gaps = cronGaps(parseCron('0 0 * JAN,jul SUN'));
    expect(gaps.minGapMs).toBe(7 * DAY);
    expect(gaps.maxGapMs).toBeGreaterThan(150 * DAY);
    expect(gaps.maxGapMs).toBeLessThan(165 * DAY);
  });

  it('matches a day when either restricted day field matches (Vixie cron)', () => {
    const both = parseCron('0 0 13 * 5'); // the 13th, and every Friday
    expect(cronRunsOnDay(both, 6, 13, 2)).toBe(true);
    expect(cronRunsOnDay(both, 6, 14, 5)).toBe(true);
    expect(cronRunsOnDay(both, 6, 14, 4)).toBe(false);
    const starred = parseCron('0 0 */2 * 5'); // a * day-of-month counts as unrestricted: odd days that are Fridays
    expect(cronRunsOnDay(starred, 6, 3, 5)).toBe(true);
    expect(cronRunsOnDay(starred, 6, 4, 5)).toBe(false);
    expect(parseCron('0 0 * * 7').daysOfWeek).toEqual(new Set([0]));
  });

  it.each([
    ['0 2', 'has 2 fields; write five'],
    ['60 * * * *', 'minute: 60 is outside 0-59'],
    ['0 25 * * *', 'hour: 25 is outside 0-23'],
    ['0 0 0 * *', 'day of month: 0 is outside 1-31'],
    ['0 0 * 13 *', 'month: 13 is outside 1-12'],
    ['0 0 * * MON-FUN', 'day of week: "FUN" is not a number'],
    ['*/0 * * * *', 'minute: step "0" must be a positive number'],
    ['0 5-1 * * *', 'hour: range 5-1 runs backwards'],
    ['0 1//2 * * *', 'hour: "1//2" is malformed'],
    ['@fortnightly', 'unknown macro "@fortnightly"'],
  ])('refuses %j: %s', (expr, message) => {
    expect(() => parseCron(expr)).toThrow(CronSyntaxError);
    expect(() => parseCron(expr)).toThrow(message);
  });

  it('refuses, as a setting, an expression that (almost) never runs', () => {
    expect(CronExpression.safeParse('0 0 30 2 *').error?.issues[0]?.message).toBe(
      'cron "0 0 30 2 *" runs less than twice in four years',
    );
    expect(CronExpression.safeParse('0 0 29 2 *').success).toBe(false);
    expect(CronExpression.safeParse('0 0 28 2 *').success).toBe(true);
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90_000],
    ['10m', 10 * MINUTE],
    ['12h', 12 * HOUR],
    ['30d', 30 * DAY],
    ['2w', 14 * DAY],
    ['1h30m', 90 * MINUTE],
    ['250ms', 250],
    ['0s', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '10', 'm', '10 m', '1.5h', '-5m', '10min', '1y'])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('formats milliseconds in the shortest exact form', () => {
    expect([0, 250, 90_000, 10 * MINUTE, 90 * MINUTE, 30 * DAY].map(formatDuration)).toEqual([
      '0s',
      '250ms',
      '1m30s',
      '10m',
      '1h30m',
      '30d',
    ]);
  });

  it('checks bounds and zero', () => {
    const schema = Duration({ min: '1m', max: '1h' });
    expect(schema.parse('5m')).toBe(5 * MINUTE);
    expect(schema.safeParse('30s').error?.issues[0]?.message).toBe('must be at least 1m');
    expect(schema.safeParse('2h').error?.issues[0]?.message).toBe('must be at most 1h');
    expect(schema.safeParse('0s').error?.issues[0]?.message).toBe('must be longer than zero');
    expect(Duration({ allowZero: true }).parse('0s')).toBe(0);
    expect(schema.safeParse(undefined).error?.issues[0]?.message).toBe('is required');
  });
});

describe('time zones', () => {
  it('knows IANA zones', () => {
    expect(TimeZone.safeParse('Asia/Jakarta').success).toBe(true);
    expect(TimeZone.safeParse('UTC').success).toBe(true);
    expect(TimeZone.safeParse('Asia/Banda_Aceh').success).toBe(false);
  });

  it('reads wall-clock times in a zone, and times with offsets alone', () => {
    expect(zoneOffsetMs('Asia/Jakarta', Date.UTC(2026, 0, 1))).toBe(7 * HOUR);
    expect(instantOf('2026-12-11T00:00:00', 'Asia/Jakarta')).toBe(Date.UTC(2026, 11, 10, 17));
    expect(instantOf('2026-12-11T00:00:00+07:00', 'Europe/Berlin')).toBe(Date.UTC(2026, 11, 10, 17));
    // Across a daylight-saving change: 03:30 in Berlin on the last Sunday of March is summer time.
    expect(instantOf('2026-03-29T03:30', 'Europe/Berlin')).toBe(Date.UTC(2026, 2, 29, 1, 30));
    expect(instantOf('2026-12-11T00:00:00', undefined)).toBeUndefined();
  });
});
