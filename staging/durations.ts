// Durations in words, for the stages' messages and progress lines alike: one home for both
// granularities, next to the stage contract (stage-contract.ts), shared by the stages and the CLI
// (a stage may import staging/ but neither bin/ nor another stage).

/** 0.42 s, 12.3 s, 2 min 05 s, 1 h 02 min: a time measured (progress lines, summaries). */
export function duration(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')} min`;
}

/** 250 ms, 30 s, 5 min, 3 h: a time given or waited for, in whole units (timeouts, ages). */
export function roughDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}
