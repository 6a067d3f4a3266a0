/**
 * The protobuf root shipped with the Temporal SDK, and small helpers to move between its wire types
 * (Long, Timestamp, Duration) and plain numbers. Everything the dev server speaks comes from here, so the
 * server can never drift from the protos the SDK client and worker were built with.
 */
import { createRequire } from 'node:module';
import type { temporal, google } from '@temporalio/proto';
import type * as protoModule from '@temporalio/proto';
import type * as protobuf from 'protobufjs';
import type Long from 'long';

const requireFromHere = createRequire(__filename);
/** The reflection root (`pbjs -t json-module`) that the SDK itself uses. */
export const protoRoot = requireFromHere('@temporalio/proto/protos/json-module.js') as protobuf.Root;

export type { temporal, google };
export const api = (requireFromHere('@temporalio/proto') as typeof protoModule).temporal.api;
export const enums = api.enums.v1;

/** Any int64 value as protobufjs decodes it (Long) or as we write it (number). */
export type Int64 = number | { toNumber(): number } | null | undefined;

/**
 * An int64 field value. protobufjs encodes plain numbers for int64 fields; the generated typings only say
 * Long, so numbers pass through this one cast.
 */
export function long(value: number): Long {
  return value as unknown as Long;
}

export function num(value: Int64 | string): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return Number(value);
  return value.toNumber();
}

export type ProtoTimestamp = google.protobuf.ITimestamp;
export type ProtoDuration = google.protobuf.IDuration;

export function timestampFromMs(ms: number): ProtoTimestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds: long(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function msFromTimestamp(ts: ProtoTimestamp | null | undefined): number | undefined {
  if (!ts) return undefined;
  return num(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

/** Duration in milliseconds; an absent duration is 0, which Temporal reads as "unset" or "unlimited". */
export function msFromDuration(d: ProtoDuration | null | undefined): number {
  if (!d) return 0;
  return num(d.seconds) * 1000 + Math.floor((d.nanos ?? 0) / 1e6);
}

export function durationFromMs(ms: number): ProtoDuration {
  const seconds = Math.floor(ms / 1000);
  return { seconds: long(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function lookupType(name: string): protobuf.Type {
  return protoRoot.lookupType(name);
}

function pushVarint(out: number[], value: number): void {
  let v = value;
  while (v > 127) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** Tag and length of a length-delimited field `fieldNumber` whose body is `length` bytes long. */
export function fieldHeader(fieldNumber: number, length: number): Buffer {
  const bytes: number[] = [];
  pushVarint(bytes, (fieldNumber << 3) | 2);
  pushVarint(bytes, length);
  return Buffer.from(bytes);
}

/** `head` (an encoded message) followed by `body` as its length-delimited field `fieldNumber`: one copy. */
export function appendField(head: Uint8Array, fieldNumber: number, body: Uint8Array): Buffer {
  return Buffer.concat([head, fieldHeader(fieldNumber, body.length), body]);
}
