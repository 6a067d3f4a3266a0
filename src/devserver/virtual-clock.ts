/**
 * The server's only source of time. In real-time mode it is the wall clock. In time-skipping mode it
 * follows the model of the Java test server: a lock counter; while any lock is held, time flows at wall
 * pace; when none is held and a timer is queued, time jumps straight to that timer. Every outstanding piece
 * of work (a workflow task, an activity, a query) holds a lock, so time only jumps when nothing but the
 * passage of time can move a workflow forward.
 */

export interface ClockTimer {
  cancel(): void;
}

/** A held lock; `release` is idempotent so that no path can unlock twice. */
export interface ClockLock {
  release(): void;
}

interface QueuedTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export interface VirtualClockOptions {
  timeSkipping: boolean;
  /** The Java test server starts locked unless told otherwise; so do we. */
  startLocked?: boolean;
  /** Called when a timer callback throws: the clock keeps running. */
  onError?: (err: unknown) => void;
}

export class VirtualClock {
  readonly timeSkipping: boolean;
  private skewMs = 0;
  private lockCount = 0;
  /** Locks held by outstanding work; counted apart so that a negative lockCount cannot cancel them out. */
  private holdCount = 0;
  /** UnlockTimeSkippingWithSleep calls in progress: each one unlocks once, as Java's does. */
  private sleepCount = 0;
  private readonly heap: QueuedTimer[] = [];
  private seq = 0;
  private wallTimer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private closed = false;
  private readonly holders = new Map<string, number>();
  private readonly onError: (err: unknown) => void;

  constructor(options: VirtualClockOptions) {
    this.timeSkipping = options.timeSkipping;
    if (options.timeSkipping && options.startLocked !== false) this.lockCount = 1;
    this.onError = options.onError ?? (() => undefined);
  }

  now(): number {
    return Date.now() + this.skewMs;
  }

  /** Adds one to the lock count (TestService LockTimeSkipping). */
  lock(): void {
    this.lockCount++;
  }

  /**
   * Removes one from the lock count (TestService UnlockTimeSkipping). The count may go below zero when
   * two `result()` calls of the testing client overlap; it is balanced again by their re-locks.
   */
  unlock(): void {
    this.lockCount--;
    if (this.canSkip()) this.schedulePump();
  }

  /**
   * Java's single count is lockCount + holds - sleeps, and it refuses to go below zero. Here the TestService
   * count may go below zero (overlapping `result()` calls), but that surplus never releases outstanding work.
   */
  private canSkip(): boolean {
    return this.timeSkipping && Math.max(0, this.lockCount) + this.holdCount - this.sleepCount <= 0;
  }

  /** Takes a lock on behalf of a piece of work, released exactly once. */
  hold(label: string): ClockLock {
    this.holdCount++;
    this.holders.set(label, (this.holders.get(label) ?? 0) + 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        const left = (this.holders.get(label) ?? 1) - 1;
        if (left > 0) this.holders.set(label, left);
        else this.holders.delete(label);
        this.holdCount--;
        if (this.canSkip()) this.schedulePump();
      },
    };
  }

  /** Runs `fn` once the clock reaches `atMs`. */
  schedule(atMs: number, fn: () => void): ClockTimer {
    const timer: QueuedTimer = { at: atMs, seq: this.seq++, fn, cancelled: false };
    this.push(timer);
    this.schedulePump();
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  after(ms: number, fn: () => void): ClockTimer {
    return this.schedule(this.now() + Math.max(0, ms), fn);
  }

  /** Resolves when the clock reaches `atMs`, without touching the lock count (TestService Sleep). */
  sleepUntil(atMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.schedule(atMs, resolve);
      signal?.addEventListener('abort', () => {
        timer.cancel();
        resolve();
      });
    });
  }

  /**
   * TestService UnlockTimeSkippingWithSleep: queue a timer that re-locks and wakes the caller, then unlock.
   * With nothing else outstanding, time jumps to the timer at once.
   */
  unlockWithSleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.sleepCount--; // re-locks
        resolve();
      };
      const timer = this.after(ms, finish);
      signal?.addEventListener('abort', () => {
        timer.cancel();
        finish();
      });
      this.sleepCount++; // unlocks
      if (this.canSkip()) this.schedulePump();
    });
  }

  /** What holds time still, for diagnostics. */
  diagnostics(): {
    now: string;
    lockCount: number;
    holds: number;
    sleeps: number;
    holders: Record<string, number>;
    queuedTimers: number;
  } {
    return {
      now: new Date(this.now()).toISOString(),
      lockCount: this.lockCount,
      holds: this.holdCount,
      sleeps: this.sleepCount,
      holders: Object.fromEntries(this.holders),
      queuedTimers: this.heap.filter((t) => !t.cancelled).length,
    };
  }

  close(): void {
    this.closed = true;
    if (this.wallTimer) clearTimeout(this.wallTimer);
    this.heap.length = 0;
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    // Bounded so that a workflow that keeps arming timers cannot starve the event loop.
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const head = this.peek();
      if (!head) break;
      const now = this.now();
      if (head.at <= now) {
        this.pop();
        try {
          head.fn();
        } catch (err) {
          this.onError(err);
        }
        continue;
      }
      if (this.canSkip()) {
        this.skewMs += head.at - now;
        continue;
      }
      break;
    }
    this.armWallTimer();
  }

  private armWallTimer(): void {
    if (this.wallTimer) clearTimeout(this.wallTimer);
    this.wallTimer = undefined;
    const head = this.peek();
    if (!head || this.closed) return;
    const delay = Math.max(0, Math.min(head.at - this.now(), 2 ** 31 - 1));
    this.wallTimer = setTimeout(() => this.pump(), delay);
    this.wallTimer.unref?.();
  }

  private peek(): QueuedTimer | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0];
  }

  private less(a: QueuedTimer, b: QueuedTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(timer: QueuedTimer): void {
    const h = this.heap;
    h.push(timer);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): QueuedTimer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
