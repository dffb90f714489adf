// Remote commands go through the SSH user's login shell, as with `ssh host cmd`: every value we
// put in one is single-quoted for a POSIX shell, so names and URLs cannot become shell syntax.
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
