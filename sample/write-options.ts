// What both sample writers (dump directory, live MongoDB) accept besides the sample and the target.

/** One collection's progress: reported at its start, every few thousand documents, and at its end. */
export interface SampleProgress {
  readonly collection: string;
  readonly written: number;
  readonly total: number;
}

export interface WriteOptions {
  /** Aborts between documents (dump) or between batches (MongoDB); partial files are removed. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: SampleProgress) => void;
}
