/** Opaque task tokens: what a worker hands back when it completes a task. */
import { invalidArgument } from './grpc-transport';

export type TaskToken =
  | { k: 'w'; ns: string; wid: string; rid: string; s: number; a: number }
  | { k: 'a'; ns: string; wid: string; rid: string; s: number; a: number }
  | { k: 'q'; ns: string; wid: string; rid: string; q: string };

export function encodeTaskToken(token: TaskToken): Buffer {
  return Buffer.from(JSON.stringify(token), 'utf8');
}

export function decodeTaskToken(bytes: Uint8Array | null | undefined, expected: TaskToken['k'][]): TaskToken {
  if (!bytes || bytes.length === 0) throw invalidArgument('taskToken is required');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw invalidArgument('taskToken is malformed: it was not issued by this server');
  }
  const t = parsed as Partial<TaskToken> | null;
  if (
    !t ||
    typeof t !== 'object' ||
    typeof t.k !== 'string' ||
    !expected.includes(t.k) ||
    typeof t.ns !== 'string' ||
    typeof t.wid !== 'string' ||
    typeof t.rid !== 'string' ||
    (t.k === 'q'
      ? typeof t.q !== 'string'
      : !Number.isInteger((t as { s?: unknown }).s) || !Number.isInteger((t as { a?: unknown }).a))
  ) {
    throw invalidArgument('taskToken is malformed: it was not issued by this server for this kind of task');
  }
  return t as TaskToken;
}
