/**
 * The committed history of one run. Each event is encoded once, when it is written, and kept framed as a
 * `History.events` entry, so that handing the full history to a poller (which happens on every workflow
 * task, since the server never sends partial sticky histories) is a buffer concatenation, not a re-encode.
 */
import { lookupType, timestampFromMs, enums, long, fieldHeader } from './proto';
import type { temporal } from './proto';

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = enums.EventType;

const historyEventType = lookupType('temporal.api.history.v1.HistoryEvent');

/** `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED` -> `workflowExecutionStartedEventAttributes`. */
function attributesField(eventType: number): string {
  const name = EventType[eventType] as unknown as string;
  const words = name
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .split('_');
  const field =
    words.map((w, i) => (i === 0 ? w : w.charAt(0).toUpperCase() + w.slice(1))).join('') + 'EventAttributes';
  if (!historyEventType.fields[field]) throw new Error(`no attributes field for ${name}`);
  return field;
}

const fieldCache = new Map<number, string>();
export function eventAttributesField(eventType: number): string {
  let field = fieldCache.get(eventType);
  if (!field) {
    field = attributesField(eventType);
    fieldCache.set(eventType, field);
  }
  return field;
}

/** Builds an event (without id) of `eventType` with its attributes. */
export function makeEvent(eventType: number, attributes: object, timeMs: number): HistoryEvent {
  return { eventType, eventTime: timestampFromMs(timeMs), [eventAttributesField(eventType)]: attributes };
}

export function attributesOf<T>(event: HistoryEvent): T {
  return (event as Record<string, unknown>)[eventAttributesField(event.eventType ?? 0)] as T;
}

let nextTaskId = 1_048_576;

export class HistoryLog {
  readonly events: HistoryEvent[] = [];
  /** Framed events back to back; `offsets[i]` is where event i+1 starts, `offsets[n]` the end. */
  private buffer = Buffer.allocUnsafe(4096);
  private readonly offsets: number[] = [0];
  private bytes = 0;
  private readonly listeners = new Set<() => void>();

  get length(): number {
    return this.events.length;
  }

  get nextEventId(): number {
    return this.events.length + 1;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  get last(): HistoryEvent | undefined {
    return this.events[this.events.length - 1];
  }

  /** Appends an event, assigning its id and task id; returns the id. */
  append(event: HistoryEvent): number {
    const eventId = this.events.length + 1;
    event.eventId = long(eventId);
    event.taskId = long(nextTaskId++);
    event.version = long(0);
    const encoded = historyEventType.encode(event).finish();
    const header = fieldHeader(1, encoded.length);
    const end = this.offsets[this.offsets.length - 1]!;
    const needed = end + header.length + encoded.length;
    if (needed > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.buffer.length * 2));
      this.buffer.copy(grown, 0, 0, end);
      this.buffer = grown;
    }
    header.copy(this.buffer, end);
    this.buffer.set(encoded, end + header.length);
    this.offsets.push(needed);
    this.events.push(event);
    this.bytes += encoded.length;
    this.notifyListeners();
    return eventId;
  }

  /** Encoded `History` message bytes of events [from, to] (1-based, inclusive); a view, not a copy. */
  encodedRange(from = 1, to = this.events.length): Buffer {
    if (to < from) return Buffer.alloc(0);
    return this.buffer.subarray(this.offsets[from - 1], this.offsets[to]);
  }

  private notifyScheduled = false;

  /** Listeners run once per burst of appends, after the writer finished its state change. */
  private notifyListeners(): void {
    if (this.notifyScheduled || this.listeners.size === 0) return;
    this.notifyScheduled = true;
    queueMicrotask(() => {
      this.notifyScheduled = false;
      for (const listener of [...this.listeners]) listener();
    });
  }

  /** Calls `listener` after appends (batched) until the returned function is called. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
