/**
 * The committed history of one run. Each event is encoded once, when it is written, and kept framed as a
 * `History.events` entry, so that handing the full history to a poller (which happens on every workflow
 * task, since the server never sends partial sticky histories) is a buffer concatenation, not a re-encode.
 */
import { lookupType, lengthDelimited, timestampFromMs, enums, long } from './proto';
import type { temporal } from './proto';

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = enums.EventType;

const historyEventType = lookupType('temporal.api.history.v1.HistoryEvent');

/** `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED` -> `workflowExecutionStartedEventAttributes`. */
function attributesField(eventType: number): string {
  const name = EventType[eventType] as unknown as string;
  const words = name.replace(/^EVENT_TYPE_/, '').toLowerCase().split('_');
  const field = words.map((w, i) => (i === 0 ? w : w.charAt(0).toUpperCase() + w.slice(1))).join('') + 'EventAttributes';
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
  private readonly framed: Buffer[] = [];
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
    const full: HistoryEvent = { ...event, eventId: long(eventId), taskId: long(nextTaskId++), version: long(0) };
    const encoded = historyEventType.encode(full).finish();
    this.events.push(full);
    const framed = lengthDelimited(1, encoded);
    this.framed.push(framed);
    this.bytes += encoded.length;
    this.notifyListeners();
    return eventId;
  }

  /** Encoded `History` message bytes of events [from, to] (1-based, inclusive). */
  encodedRange(from = 1, to = this.events.length): Buffer {
    return Buffer.concat(this.framed.slice(from - 1, to));
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
