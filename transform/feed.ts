// What lets a transform start while its run is still being extracted (`etl run`): the extract's
// collections as it finishes them, each with the record its manifest section holds. bin/ fills the
// feed from the extract's `collection_done` events; transform reads only the staged files and the
// manifest, as always (a stage never imports another stage).
import type { ExtractCollectionRecord } from '../staging/manifest-extract.ts';
import type { Manifest } from '../staging/manifest.ts';

export interface ExtractedCollection {
  readonly collection: string;
  /** The collection's record in the extract section: its file is complete and will not change. */
  readonly record: ExtractCollectionRecord;
}

export interface ExtractFeed {
  /** The collections the extract reads, in its order (its `started` event). */
  readonly collections: readonly string[];
  /**
   * Each collection once staged. Ends when the extract is done (its section says so), and throws
   * the extract's error when it failed: the transform then leaves nothing behind.
   */
  readonly extracted: AsyncIterable<ExtractedCollection>;
  /**
   * The transform's `running` section, to be written in the extract's own `done` write (bin/ hands
   * `withDone` to the extract): the transform writes files before its section can be written.
   */
  stampWhenDone?(stamp: (manifest: Manifest) => void): void;
}

/** A feed bin/ pushes into: `push` per collection, then `end()` or `fail(error)`. */
export class CollectionFeed implements ExtractFeed {
  private readonly items: ExtractedCollection[] = [];
  private outcome: { readonly error: unknown } | 'ended' | null = null;
  private wake: (() => void) | null = null;

  private stamp: ((manifest: Manifest) => void) | null = null;

  constructor(readonly collections: readonly string[]) {}

  stampWhenDone(stamp: (manifest: Manifest) => void): void {
    this.stamp = stamp;
  }

  /** The extract's `withDone`: the manifest it is about to write with its section done. */
  readonly withDone = (manifest: Manifest): void => {
    this.stamp?.(manifest);
  };

  push(item: ExtractedCollection): void {
    if (this.outcome !== null) return;
    this.items.push(item);
    this.notify();
  }

  end(): void {
    this.outcome ??= 'ended';
    this.notify();
  }

  fail(error: unknown): void {
    this.outcome ??= { error };
    this.notify();
  }

  readonly extracted: AsyncIterable<ExtractedCollection> = {
    [Symbol.asyncIterator]: () => ({ next: () => this.next() }),
  };

  private async next(): Promise<IteratorResult<ExtractedCollection>> {
    for (;;) {
      // A failed extract wins over collections still queued: none of them is transformed.
      if (this.outcome !== null && this.outcome !== 'ended') throw this.outcome.error;
      const item = this.items.shift();
      if (item) return { value: item, done: false };
      if (this.outcome === 'ended') return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
