// Sizes as people read them (1.4 MB); reports keep exact byte counts, this is only for display.
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** Calls `write` at most once a second (progress lines on stderr). */
export function throttled<T>(write: (value: T) => void, everyMs = 1000): (value: T, force?: boolean) => void {
  let last = 0;
  return (value, force = false) => {
    const now = Date.now();
    if (!force && now - last < everyMs) return;
    last = now;
    write(value);
  };
}
