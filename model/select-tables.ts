// The tables a command works on: every table of the pipeline, or the subset `--tables` names. One
// check for every command (extract, transform, load, diff), so an unknown name always reads the same.
import { UsageError } from '../errors/etl-error.ts';
import { closest } from './field-spec.ts';
import type { PipelineModel } from './types.ts';

/** The `--tables` subset in load order, or every table when none is given; an unknown name is a usage error. */
export function selectTables(model: PipelineModel, subset: readonly string[] | null | undefined): string[] {
  if (!subset || subset.length === 0) return [...model.loadOrder];
  const unknown = subset.filter((t) => !model.tables.has(t));
  if (unknown.length > 0) {
    const named = unknown.map((t) => {
      const guess = closest(t, model.loadOrder);
      return `"${t}"${guess ? ` (did you mean "${guess}"?)` : ''}`;
    });
    throw new UsageError('unknown_table', `unknown table${unknown.length > 1 ? 's' : ''} ${named.join(', ')} in --tables (not in ${model.file})`, {
      context: { flag: '--tables' },
      hint: `tables of ${model.file}: ${model.loadOrder.join(', ')}`,
    });
  }
  const wanted = new Set(subset);
  return model.loadOrder.filter((t) => wanted.has(t));
}
