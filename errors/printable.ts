// Text that came from input (a YAML token, a key, a value, a file name) may be megabytes long or
// hold terminal controls (an escape sequence rewrites the operator's screen). An error shows it cut
// to a length, its controls escaped as \uXXXX. Applied after redaction: a cut never halves a secret
// before it is recognised.

import nodePath from 'node:path';

/**
 * C0 controls but tab and newline, DEL and C1; and the bidi formatting characters (ALM, LRM, RLM,
 * the embeddings and overrides, the isolates): a U+202E in a value turns around everything after it
 * on its line or in its paragraph, so `id column = value` would read as something else.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export const MAX_LINE = 1_000;
export const MAX_LINES = 200;

/** One character as `\uXXXX`. */
const escaped = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Text with its controls shown as \uXXXX (tab and newline kept), nothing cut. */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, escaped);
}

const LINE_BREAK = /[\n\r]/;

/**
 * `text` with every occurrence of an input (a file name, a flag's value) that holds a line break,
 * and of its folders, shown on one line (\u000a): a message keeps the lines etl gives it, and an
 * input cannot add one of its own (`--out $'x\nhint: …'` printing a fake hint).
 */
export function inputsOnOneLine(text: string, inputs: readonly string[]): string {
  const quoted = new Set<string>();
  for (const input of inputs) {
    // The folders too: a message says "the folder D does not exist" of the file it could not write.
    for (let p = input; LINE_BREAK.test(p); p = nodePath.dirname(p)) {
      quoted.add(p);
      if (nodePath.dirname(p) === p) break;
    }
  }
  // Longest first: a file's folder is part of the file's own name.
  let shown = text;
  for (const q of [...quoted].sort((a, b) => b.length - a.length)) {
    shown = shown.split(q).join(q.replace(/[\n\r]/g, escaped));
  }
  return shown;
}

/** One line as a terminal may show it: controls escaped, at most `max` characters and a count of the rest. */
export function printableLine(line: string, max = MAX_LINE): string {
  const shown = escapeControls(line);
  if (shown.length <= max) return shown;
  // Never half a surrogate pair.
  const cut = /[\ud800-\udbff]/.test(shown[max - 1]!) ? max - 1 : max;
  return `${shown.slice(0, cut)}… (${(shown.length - cut).toLocaleString('en-US')} more characters)`;
}

/** Whether cutting `text` at `at` would halve a surrogate pair. */
const halvesPair = (text: string, at: number): boolean => /[\ud800-\udbff]/.test(text[at - 1] ?? '') && /[\udc00-\udfff]/.test(text[at] ?? '');

/**
 * `text` kept whole up to `head + tail` characters; beyond, its first `head` and last `tail` with a
 * count of what was left out between them (the start says what failed, the end often where).
 * Nothing escaped: for a record (a manifest), not a terminal.
 */
export function cutMiddle(text: string, head: number, tail: number): string {
  if (text.length <= head + tail) return text;
  const start = halvesPair(text, head) ? head - 1 : head;
  const end = halvesPair(text, text.length - tail) ? text.length - tail + 1 : text.length - tail;
  return `${text.slice(0, start)}… (${(end - start).toLocaleString('en-US')} characters left out) …${text.slice(end)}`;
}

/** Every line printable, and at most `maxLines` of them. */
export function printableText(text: string, maxLines = MAX_LINES): string {
  const lines = text.split('\n');
  const kept = lines.slice(0, maxLines).map((l) => printableLine(l));
  if (lines.length > maxLines) kept.push(`… and ${(lines.length - maxLines).toLocaleString('en-US')} more lines`);
  return kept.join('\n');
}
