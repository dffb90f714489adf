// What a running stage has done so far, item by item (collections for extract, tables for transform
// and load). A stage prints nothing: bin/ turns its progress events into calls on a StageTracker,
// and the renderers (live list, log lines, verbose lines) read this state.
import type { Gauge } from './meter.ts';

/** What bin/progress/<stage>-events.ts may tell about a running stage. */
export interface StageTracker {
  /** The items in the order they are worked on, with their totals when known (a count, the manifest). */
  plan(title: string, items: readonly { readonly name: string; readonly total: number | null }[], unit: string): void;
  progress(item: string, done: number, total?: number | null): void;
  /** A short state (e.g. `merge`, `waiting for the lock`); item null: the stage as a whole. */
  phase(item: string | null, text: string): void;
  /** Per-batch detail: shown under --verbose only. */
  detail(item: string | null, text: string): void;
  /**
   * What the operator must know at once, while it lasts (the stage waits for another session): a
   * line in logs when it starts, the stage's state on a terminal; null when it is over.
   */
  notice(text: string | null): void;
  finish(item: string, summary: string): void;
  fail(item: string): void;
}

export interface ItemState {
  readonly name: string;
  done: number;
  total: number | null;
  startedAt: number | null;
  phase: string | null;
  summary: string | null;
  finished: boolean;
  failed: boolean;
}

export type StageChange =
  | { readonly kind: 'plan' }
  | { readonly kind: 'progress' | 'phase' | 'finish' | 'fail'; readonly item: string | null }
  | { readonly kind: 'detail'; readonly item: string | null; readonly text: string }
  | { readonly kind: 'notice'; readonly text: string };

export class StageState implements StageTracker {
  readonly startedAt = Date.now();
  readonly items = new Map<string, ItemState>();
  title: string;
  unit = 'documents';
  stagePhase: string | null = null;
  /** The notice in force (notice()), or null. */
  noticeInForce: string | null = null;
  private planKnown = false;
  private readonly listeners = new Set<(change: StageChange) => void>();

  constructor(
    readonly name: string,
    title: string,
  ) {
    this.title = title;
  }

  get planned(): boolean {
    return this.planKnown;
  }

  onChange(listener: (change: StageChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  plan(title: string, items: readonly { readonly name: string; readonly total: number | null }[], unit: string): void {
    this.title = title;
    this.unit = unit;
    for (const i of items) this.items.set(i.name, { name: i.name, done: 0, total: i.total, startedAt: null, phase: null, summary: null, finished: false, failed: false });
    this.planKnown = true;
    this.emit({ kind: 'plan' });
  }

  progress(item: string, done: number, total?: number | null): void {
    const s = this.item(item);
    s.startedAt ??= Date.now();
    s.done = done;
    if (total !== undefined) s.total = total;
    this.emit({ kind: 'progress', item });
  }

  phase(item: string | null, text: string): void {
    if (item === null) this.stagePhase = text;
    else {
      const s = this.item(item);
      s.startedAt ??= Date.now();
      s.phase = text;
    }
    this.emit({ kind: 'phase', item });
  }

  detail(item: string | null, text: string): void {
    this.emit({ kind: 'detail', item, text });
  }

  notice(text: string | null): void {
    this.stagePhase = text;
    this.noticeInForce = text;
    if (text !== null) this.emit({ kind: 'notice', text });
  }

  finish(item: string, summary: string): void {
    const s = this.item(item);
    s.summary = summary;
    s.finished = true;
    if (s.total !== null) s.done = Math.max(s.done, s.total);
    this.emit({ kind: 'finish', item });
  }

  fail(item: string): void {
    this.item(item).failed = true;
    this.emit({ kind: 'fail', item });
  }

  /** One item's gauge: elapsed since its first event. */
  gauge(name: string): Gauge {
    const s = this.item(name);
    return { done: s.done, total: s.total, elapsedMs: s.startedAt === null ? 0 : Date.now() - s.startedAt, unit: this.unit };
  }

  /** The stage's gauge: every item's counts, elapsed since the stage began. */
  totals(): Gauge {
    let done = 0;
    let total: number | null = 0;
    for (const s of this.items.values()) {
      done += s.done;
      total = total === null || s.total === null ? null : total + s.total;
    }
    return { done, total: this.items.size === 0 ? null : total, elapsedMs: Date.now() - this.startedAt, unit: this.unit };
  }

  /** The item being worked on (for a heartbeat line). */
  current(): ItemState | null {
    let best: ItemState | null = null;
    for (const s of this.items.values()) if (!s.finished && s.startedAt !== null && (best === null || s.startedAt > best.startedAt!)) best = s;
    return best;
  }

  private item(name: string): ItemState {
    let s = this.items.get(name);
    if (!s) {
      // An item the plan did not announce (events may name one): track it all the same.
      s = { name, done: 0, total: null, startedAt: null, phase: null, summary: null, finished: false, failed: false };
      this.items.set(name, s);
    }
    return s;
  }

  private emit(change: StageChange): void {
    for (const l of this.listeners) l(change);
  }
}
