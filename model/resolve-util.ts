// Small helpers the resolver's steps share (model/load-pipeline.ts, model/resolve-table.ts).

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map);

/** A name as findings quote it: `"users"`. */
export const quote = (s: string): string => JSON.stringify(s);

export const list = (names: readonly string[]): string => names.join(', ');

export const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

// PostgreSQL silently truncates longer identifiers, which would make two names collide.
export const MAX_IDENTIFIER_BYTES = 63;
