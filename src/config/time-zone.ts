/**
 * IANA time zones (`Asia/Jakarta`) and local wall-clock times in them, via the runtime's Intl data.
 * Deterministic: no I/O, no clock.
 */
import { z } from 'zod';

/** Whether the runtime knows `zone` as an IANA time zone. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** An IANA time zone name such as `Asia/Jakarta` or `UTC`. */
export const TimeZone = z
  .string()
  .refine(isTimeZone, { message: 'must be an IANA time zone such as Asia/Jakarta or UTC' });

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The offset of `zone` from UTC at the instant `epochMs`, in ms (Asia/Jakarta: +7h). */
export function zoneOffsetMs(zone: string, epochMs: number): number {
  let format = formatters.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, format);
  }
  const part = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
  for (const p of format.formatToParts(new Date(epochMs))) {
    if (p.type in part) part[p.type as keyof typeof part] = Number(p.value);
  }
  const asUtc = Date.UTC(part.year, part.month - 1, part.day, part.hour, part.minute, part.second);
  return asUtc - Math.floor(epochMs / 1000) * 1000;
}

const LOCAL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?$/;
const HAS_OFFSET = /(?:Z|[+-]\d{2}:?\d{2})$/i;

/** Whether an ISO 8601 date-time names its offset (`Z`, `+07:00`). */
export function hasUtcOffset(isoDateTime: string): boolean {
  return HAS_OFFSET.test(isoDateTime);
}

/**
 * The instant of an ISO 8601 date-time: with an offset it stands alone; without one it is a wall-clock
 * time in `zone`. `undefined` when it cannot be read.
 */
export function instantOf(isoDateTime: string, zone: string | undefined): number | undefined {
  if (hasUtcOffset(isoDateTime)) {
    const ms = Date.parse(isoDateTime);
    return Number.isNaN(ms) ? undefined : ms;
  }
  const m = LOCAL.exec(isoDateTime);
  if (!m || !zone) return undefined;
  const local = Date.UTC(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6] ?? 0),
    Number((m[7] ?? '0').padEnd(3, '0')),
  );
  // Two rounds settle the offset on either side of a daylight-saving change.
  let guess = local - zoneOffsetMs(zone, local);
  guess = local - zoneOffsetMs(zone, guess);
  return guess;
}
