/** Freeze windows: recurring and one-off windows, hotfixes, environments, chains, daylight saving. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPlatformConfig } from '../../src/config/load-platform-config';
import { FreezeWindow } from '../../src/config/platform-config';
import { activeFreeze } from '../../src/domain/freeze-window';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const at = (iso: string): number => Date.parse(iso);

const { config } = readPlatformConfig({
  file: path.join(__dirname, '..', '..', 'config', 'aceh-commerce.yaml'),
});
const shipped = config.freezeWindows;
const JAKARTA = config.organization.timezone;

const window = (input: Record<string, unknown>): FreezeWindow =>
  FreezeWindow.parse({ environments: ['production'], ...input });

describe('the shipped freeze windows', () => {
  it('are the weekend and 12.12 windows these tests expect', () => {
    expect(JAKARTA).toBe('Asia/Jakarta');
    expect(shipped).toMatchObject([
      { name: 'weekend', kind: 'recurring', cron: '0 17 * * 5', duration: 63 * HOUR, allowHotfixes: true },
      {
        name: 'harbolnas-12-12',
        kind: 'once',
        start: '2026-12-11T00:00:00',
        end: '2026-12-13T00:00:00',
        allowHotfixes: false,
      },
    ]);
  });

  // Friday 2026-06-05 17:00 WIB is 10:00 UTC; 63 hours later is Monday 08:00 WIB, 01:00 UTC.
  const weekend = {
    window: 'weekend',
    startedAtMs: at('2026-06-05T10:00:00Z'),
    endsAtMs: at('2026-06-08T01:00:00Z'),
  };
  it.each([
    ['Friday 16:59 WIB', '2026-06-05T16:59:00+07:00', 'production', false, null],
    ['Friday 17:00 WIB', '2026-06-05T17:00:00+07:00', 'production', false, weekend],
    ['Sunday noon WIB', '2026-06-07T12:00:00+07:00', 'production', false, weekend],
    ['Monday 07:59 WIB', '2026-06-08T07:59:00+07:00', 'production', false, weekend],
    ['Monday 07:59:59.999 WIB', '2026-06-08T07:59:59.999+07:00', 'production', false, weekend],
    ['Monday 08:00 WIB', '2026-06-08T08:00:00+07:00', 'production', false, null],
    ['a hotfix on Sunday (allowHotfixes)', '2026-06-07T12:00:00+07:00', 'production', true, null],
    ['staging on Sunday (not listed)', '2026-06-07T12:00:00+07:00', 'staging', false, null],
    ['an environment no window names', '2026-06-07T12:00:00+07:00', 'development', false, null],
    ['a Wednesday', '2026-06-10T12:00:00+07:00', 'production', false, null],
  ])('weekend window: %s', (_, time, environment, hotfix, expected) => {
    const freeze = activeFreeze(shipped, { environment, atMs: at(time), hotfix, defaultTimeZone: JAKARTA });
    if (expected === null) expect(freeze).toBeNull();
    else
      expect(freeze).toEqual({ ...expected, reason: 'Nobody on call from Friday evening to Monday morning' });
  });

  // 12.12 runs from 2026-12-11 00:00 to 2026-12-13 00:00 WIB; 11 December 2026 is a Friday, so in production
  // the weekend window (Friday 17:00 to Monday 08:00 WIB) starts before 12.12 ends and the two chain.
  const harbolnasStart = at('2026-12-10T17:00:00Z');
  const harbolnasEnd = at('2026-12-12T17:00:00Z');
  const weekendEnd = at('2026-12-14T01:00:00Z');
  it.each([
    ['staging, the day before', '2026-12-10T23:59:00+07:00', 'staging', false, null],
    ['staging, at the start', '2026-12-11T00:00:00+07:00', 'staging', false, [harbolnasStart, harbolnasEnd]],
    [
      'staging, a hotfix is refused',
      '2026-12-12T10:00:00+07:00',
      'staging',
      true,
      [harbolnasStart, harbolnasEnd],
    ],
    ['staging, at the end', '2026-12-13T00:00:00+07:00', 'staging', false, null],
    [
      'production: chained to the weekend',
      '2026-12-11T10:00:00+07:00',
      'production',
      false,
      [harbolnasStart, weekendEnd],
    ],
    [
      'production, a hotfix: refused by 12.12, then the weekend lets it pass',
      '2026-12-11T10:00:00+07:00',
      'production',
      true,
      [harbolnasStart, harbolnasEnd],
    ],
  ])('harbolnas-12-12 window: %s', (_, time, environment, hotfix, expected) => {
    const freeze = activeFreeze(shipped, { environment, atMs: at(time), hotfix, defaultTimeZone: JAKARTA });
    if (expected === null) {
      expect(freeze).toBeNull();
    } else {
      expect(freeze).toEqual({
        window: 'harbolnas-12-12',
        reason: 'National online shopping day traffic peak',
        startedAtMs: expected[0],
        endsAtMs: expected[1],
      });
    }
  });

  it('names the window that started first when the weekend is in force inside 12.12', () => {
    const freeze = activeFreeze(shipped, {
      environment: 'production',
      atMs: at('2026-12-12T10:00:00+07:00'),
      hotfix: false,
      defaultTimeZone: JAKARTA,
    });
    expect(freeze).toMatchObject({
      window: 'harbolnas-12-12',
      startedAtMs: harbolnasStart,
      endsAtMs: weekendEnd,
    });
  });

  it('reads a window without a zone in the default zone', () => {
    // Friday 17:30 UTC: after 17:00 UTC, long before Friday 17:00 WIB of the next week.
    const query = { environment: 'production', atMs: at('2026-06-05T17:30:00Z'), hotfix: false };
    expect(activeFreeze(shipped, { ...query, defaultTimeZone: 'UTC' })).toMatchObject({
      startedAtMs: at('2026-06-05T17:00:00Z'),
      endsAtMs: at('2026-06-08T08:00:00Z'),
    });
    expect(activeFreeze(shipped, { ...query, defaultTimeZone: 'Asia/Jakarta' })).toMatchObject({
      startedAtMs: at('2026-06-05T10:00:00Z'),
    });
    expect(
      activeFreeze(shipped, { ...query, atMs: at('2026-06-05T16:59:00Z'), defaultTimeZone: 'UTC' }),
    ).toBeNull();
  });

  it('finds nothing without windows', () => {
    expect(
      activeFreeze([], {
        environment: 'production',
        atMs: at('2026-06-07T00:00:00Z'),
        hotfix: false,
        defaultTimeZone: JAKARTA,
      }),
    ).toBeNull();
  });
});

describe('chained windows', () => {
  const windows = [
    window({ name: 'a', reason: 'first', start: '2026-05-04T10:00:00Z', end: '2026-05-04T12:00:00Z' }),
    window({ name: 'b', start: '2026-05-04T11:00:00Z', end: '2026-05-04T14:00:00Z' }),
    // Starts exactly when b ends: a release waiting for b would be frozen again at once.
    window({ name: 'c', start: '2026-05-04T14:00:00Z', end: '2026-05-04T15:00:00Z' }),
    // One minute after c: a separate freeze.
    window({ name: 'd', start: '2026-05-04T15:01:00Z', end: '2026-05-04T16:00:00Z' }),
    window({
      name: 'e',
      start: '2026-05-04T14:30:00Z',
      end: '2026-05-04T14:45:00Z',
      environments: ['staging'],
    }),
  ];
  it.each([
    ['09:59', null],
    [
      '10:00',
      {
        window: 'a',
        reason: 'first',
        startedAtMs: at('2026-05-04T10:00:00Z'),
        endsAtMs: at('2026-05-04T15:00:00Z'),
      },
    ],
    [
      '11:30',
      {
        window: 'a',
        reason: 'first',
        startedAtMs: at('2026-05-04T10:00:00Z'),
        endsAtMs: at('2026-05-04T15:00:00Z'),
      },
    ],
    [
      '12:00',
      {
        window: 'b',
        reason: null,
        startedAtMs: at('2026-05-04T11:00:00Z'),
        endsAtMs: at('2026-05-04T15:00:00Z'),
      },
    ],
    [
      '14:00',
      {
        window: 'c',
        reason: null,
        startedAtMs: at('2026-05-04T14:00:00Z'),
        endsAtMs: at('2026-05-04T15:00:00Z'),
      },
    ],
    ['15:00', null],
    [
      '15:30',
      {
        window: 'd',
        reason: null,
        startedAtMs: at('2026-05-04T15:01:00Z'),
        endsAtMs: at('2026-05-04T16:00:00Z'),
      },
    ],
  ])('at %s UTC', (time, expected) => {
    const atMs = at(`2026-05-04T${time}:00Z`);
    expect(
      activeFreeze(windows, { environment: 'production', atMs, hotfix: false, defaultTimeZone: 'UTC' }),
    ).toEqual(expected);
  });

  it('chains a recurring window to itself when firings come closer than its duration', () => {
    // Every day at 09:00 for 25 hours: one long freeze; the chain is followed to a finite end.
    const daily = [window({ name: 'daily', cron: '0 9 * * *', duration: '25h', timezone: 'UTC' })];
    const atMs = at('2026-05-04T10:00:00Z');
    const freeze = activeFreeze(daily, {
      environment: 'production',
      atMs,
      hotfix: false,
      defaultTimeZone: 'UTC',
    });
    expect(freeze?.startedAtMs).toBe(at('2026-05-04T09:00:00Z'));
    expect(freeze?.endsAtMs).toBeGreaterThan(atMs + 30 * DAY);
    expect(freeze?.endsAtMs).toBeLessThanOrEqual(atMs + 2 * 367 * DAY);
  });

  it('follows a chain of recurring windows with different zones', () => {
    // 20:00-23:00 UTC, then 06:00-09:00 WIB (23:00-02:00 UTC): one freeze from 20:00 to 02:00 UTC.
    const pair = [
      window({ name: 'evening', cron: '0 20 * * *', duration: '3h', timezone: 'UTC' }),
      window({ name: 'morning', cron: '0 6 * * *', duration: '3h', timezone: 'Asia/Jakarta' }),
    ];
    const query = { environment: 'production', hotfix: false, defaultTimeZone: 'UTC' };
    expect(activeFreeze(pair, { ...query, atMs: at('2026-05-04T21:00:00Z') })).toMatchObject({
      window: 'evening',
      endsAtMs: at('2026-05-05T02:00:00Z'),
    });
    expect(activeFreeze(pair, { ...query, atMs: at('2026-05-05T01:00:00Z') })).toMatchObject({
      window: 'morning',
      startedAtMs: at('2026-05-04T23:00:00Z'),
      endsAtMs: at('2026-05-05T02:00:00Z'),
    });
    expect(activeFreeze(pair, { ...query, atMs: at('2026-05-05T02:00:00Z') })).toBeNull();
  });
});

describe('recurring windows across daylight-saving changes (Europe/Berlin)', () => {
  const weekend = [
    window({ name: 'weekend', cron: '0 17 * * 5', duration: '63h', timezone: 'Europe/Berlin' }),
  ];
  const nightly = [
    window({ name: 'nightly', cron: '30 2 * * *', duration: '30m', timezone: 'Europe/Berlin' }),
  ];
  it.each([
    // Spring forward on Sunday 2026-03-29 at 01:00 UTC. Friday 17:00 CET is 16:00 UTC; 63 hours later is
    // Monday 07:00 UTC, 09:00 CEST by the clock.
    ['spring: Friday 16:59 CET', weekend, '2026-03-27T15:59:00Z', null],
    [
      'spring: Friday 17:00 CET',
      weekend,
      '2026-03-27T16:00:00Z',
      ['2026-03-27T16:00:00Z', '2026-03-30T07:00:00Z'],
    ],
    [
      'spring: Monday 08:59 CEST',
      weekend,
      '2026-03-30T06:59:00Z',
      ['2026-03-27T16:00:00Z', '2026-03-30T07:00:00Z'],
    ],
    ['spring: Monday 09:00 CEST', weekend, '2026-03-30T07:00:00Z', null],
    ['spring: next Friday 16:59 CEST', weekend, '2026-04-03T14:59:00Z', null],
    [
      'spring: next Friday 17:00 CEST',
      weekend,
      '2026-04-03T15:00:00Z',
      ['2026-04-03T15:00:00Z', '2026-04-06T06:00:00Z'],
    ],
    // Fall back on Sunday 2026-10-25 at 01:00 UTC: 63 hours from Friday 17:00 CEST is Monday 07:00 CET.
    [
      'autumn: Friday 17:00 CEST',
      weekend,
      '2026-10-23T15:00:00Z',
      ['2026-10-23T15:00:00Z', '2026-10-26T06:00:00Z'],
    ],
    [
      'autumn: Monday 06:59 CET',
      weekend,
      '2026-10-26T05:59:00Z',
      ['2026-10-23T15:00:00Z', '2026-10-26T06:00:00Z'],
    ],
    ['autumn: Monday 07:00 CET', weekend, '2026-10-26T06:00:00Z', null],
    ['autumn: next Friday 16:30 CET', weekend, '2026-10-30T15:30:00Z', null],
    [
      'autumn: next Friday 17:00 CET',
      weekend,
      '2026-10-30T16:00:00Z',
      ['2026-10-30T16:00:00Z', '2026-11-02T07:00:00Z'],
    ],
    // 02:30 does not exist on 2026-03-29: the firing comes at 03:30 CEST (01:30 UTC).
    ['skipped 02:30, before', nightly, '2026-03-29T01:29:00Z', null],
    [
      'skipped 02:30, fired at 03:30 CEST',
      nightly,
      '2026-03-29T01:45:00Z',
      ['2026-03-29T01:30:00Z', '2026-03-29T02:00:00Z'],
    ],
    [
      '02:30 CET the day before',
      nightly,
      '2026-03-28T01:40:00Z',
      ['2026-03-28T01:30:00Z', '2026-03-28T02:00:00Z'],
    ],
    [
      '02:30 CEST the day after',
      nightly,
      '2026-03-30T00:40:00Z',
      ['2026-03-30T00:30:00Z', '2026-03-30T01:00:00Z'],
    ],
    // 02:30 happens twice on 2026-10-25; the window opens once, at the first one (02:30 CEST).
    [
      'repeated 02:30, first time',
      nightly,
      '2026-10-25T00:40:00Z',
      ['2026-10-25T00:30:00Z', '2026-10-25T01:00:00Z'],
    ],
    ['repeated 02:30, between', nightly, '2026-10-25T01:00:00Z', null],
    ['repeated 02:30, second time', nightly, '2026-10-25T01:40:00Z', null],
    [
      '03:30 CET after the repeat',
      [window({ name: 'n', cron: '30 3 * * *', duration: '30m', timezone: 'Europe/Berlin' })],
      '2026-10-25T02:40:00Z',
      ['2026-10-25T02:30:00Z', '2026-10-25T03:00:00Z'],
    ],
    [
      '01:30 CEST before the repeat',
      [window({ name: 'n', cron: '30 1 * * *', duration: '30m', timezone: 'Europe/Berlin' })],
      '2026-10-24T23:40:00Z',
      ['2026-10-24T23:30:00Z', '2026-10-25T00:00:00Z'],
    ],
    [
      '04:00 CEST after the skip',
      [window({ name: 'n', cron: '0 4 * * *', duration: '30m', timezone: 'Europe/Berlin' })],
      '2026-03-29T02:10:00Z',
      ['2026-03-29T02:00:00Z', '2026-03-29T02:30:00Z'],
    ],
    [
      '01:59 CET before the skip',
      [window({ name: 'n', cron: '59 1 * * *', duration: '30m', timezone: 'Europe/Berlin' })],
      '2026-03-29T01:00:00Z',
      ['2026-03-29T00:59:00Z', '2026-03-29T01:29:00Z'],
    ],
  ])('%s', (_, windows, time, expected) => {
    const freeze = activeFreeze(windows, {
      environment: 'production',
      atMs: at(time),
      hotfix: false,
      defaultTimeZone: 'UTC',
    });
    if (expected === null) expect(freeze).toBeNull();
    else expect(freeze).toMatchObject({ startedAtMs: at(expected[0]!), endsAtMs: at(expected[1]!) });
  });
});

describe('one-off windows with offsets', () => {
  // Start with its own offset, end in UTC: the window's and the default zone play no part.
  const windows = [
    window({ name: 'migration', start: '2026-06-01T00:00:00+02:00', end: '2026-06-01T06:00:00Z' }),
  ];
  it.each([
    ['2026-05-31T21:59:59.999Z', false],
    ['2026-05-31T22:00:00Z', true],
    ['2026-06-01T05:59:00Z', true],
    ['2026-06-01T06:00:00Z', false],
  ])('at %s frozen: %s', (time, frozen) => {
    for (const defaultTimeZone of ['Asia/Jakarta', 'America/New_York']) {
      const freeze = activeFreeze(windows, {
        environment: 'production',
        atMs: at(time),
        hotfix: false,
        defaultTimeZone,
      });
      expect(freeze).toEqual(
        frozen
          ? {
              window: 'migration',
              reason: null,
              startedAtMs: at('2026-05-31T22:00:00Z'),
              endsAtMs: at('2026-06-01T06:00:00Z'),
            }
          : null,
      );
    }
  });

  it('reads a local time in the window zone before the default zone', () => {
    const local = [
      window({
        name: 'local',
        start: '2026-06-01T00:00:00',
        end: '2026-06-02T00:00:00',
        timezone: 'Asia/Tokyo',
      }),
    ];
    const query = { environment: 'production', hotfix: false, defaultTimeZone: 'UTC' };
    expect(activeFreeze(local, { ...query, atMs: at('2026-05-31T15:00:00Z') })?.startedAtMs).toBe(
      at('2026-05-31T15:00:00Z'),
    );
    expect(activeFreeze(local, { ...query, atMs: at('2026-05-31T14:59:00Z') })).toBeNull();
  });
});

describe('long recurring windows', () => {
  it('finds the firing of a window as long as a year', () => {
    const yearly = [window({ name: 'year', cron: '0 0 1 1 *', duration: '366d', timezone: 'Asia/Jakarta' })];
    const query = { environment: 'production', hotfix: false, defaultTimeZone: 'UTC' };
    const freeze = activeFreeze(yearly, { ...query, atMs: at('2026-12-31T12:00:00Z') });
    // 2026-01-01 00:00 WIB + 366 days is 2027-01-02 00:00 WIB, which is in force at the next firing:
    // the chain runs on, but it starts on 1 January 2026.
    expect(freeze).toMatchObject({ window: 'year', startedAtMs: at('2025-12-31T17:00:00Z') });
    expect(freeze?.endsAtMs).toBeGreaterThanOrEqual(at('2027-01-01T17:00:00Z'));
  });

  it('finds no firing when the last one is longer ago than the duration', () => {
    const fortnight = [window({ name: 'new-year', cron: '0 0 1 1 *', duration: '14d', timezone: 'UTC' })];
    const query = { environment: 'production', hotfix: false, defaultTimeZone: 'UTC' };
    expect(activeFreeze(fortnight, { ...query, atMs: at('2026-01-14T23:59:00Z') })).toMatchObject({
      startedAtMs: at('2026-01-01T00:00:00Z'),
      endsAtMs: at('2026-01-15T00:00:00Z'),
    });
    expect(activeFreeze(fortnight, { ...query, atMs: at('2026-01-15T00:00:00Z') })).toBeNull();
    expect(activeFreeze(fortnight, { ...query, atMs: at('2026-12-31T23:59:00Z') })).toBeNull();
  });

  it('judges a minute-by-minute cron by its latest minute', () => {
    const busy = [window({ name: 'busy', cron: '* 12-13 * * *', duration: '90s', timezone: 'UTC' })];
    const query = { environment: 'production', hotfix: false, defaultTimeZone: 'UTC' };
    expect(activeFreeze(busy, { ...query, atMs: at('2026-05-04T13:59:30Z') })).toMatchObject({
      startedAtMs: at('2026-05-04T13:59:00Z'),
      endsAtMs: at('2026-05-04T14:00:30Z'),
    });
    expect(activeFreeze(busy, { ...query, atMs: at('2026-05-04T14:00:30Z') })).toBeNull();
    expect(activeFreeze(busy, { ...query, atMs: at('2026-05-04T11:59:59Z') })).toBeNull();
  });
});

describe('invalid input', () => {
  const query = {
    environment: 'production',
    atMs: at('2026-05-04T00:00:00Z'),
    hotfix: false,
    defaultTimeZone: 'UTC',
  };
  it('refuses an instant that is not a number', () => {
    expect(() => activeFreeze(shipped, { ...query, atMs: Number.NaN })).toThrow(RangeError);
  });

  it('refuses a one-off window whose times cannot be read', () => {
    const broken: FreezeWindow = {
      name: 'broken',
      reason: undefined,
      environments: ['production'],
      timezone: undefined,
      allowHotfixes: false,
      kind: 'once',
      start: 'next Friday',
      end: '2026-05-05T00:00:00',
    };
    expect(() => activeFreeze([broken], query)).toThrow(/freeze window "broken".*ISO date-times/);
  });

  it('refuses an unknown time zone', () => {
    expect(() => activeFreeze(shipped, { ...query, defaultTimeZone: 'Mars/Olympus_Mons' })).toThrow(
      RangeError,
    );
  });

  it('ignores a window of another environment even when it is broken', () => {
    const broken = {
      ...window({ name: 'x', start: '2026-05-04T00:00:00Z', end: '2026-05-05T00:00:00Z' }),
      start: 'soon',
    };
    expect(activeFreeze([broken], { ...query, environment: 'staging' })).toBeNull();
  });
});
