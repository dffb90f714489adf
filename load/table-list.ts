// How load's messages name several tables: the refusals of an older run, the watermark warnings.

/** `a, b and 3 more tables` for a long list of tables. */
export function tableList(tables: readonly string[]): string {
  return tables.length <= 4 ? tables.join(', ') : `${tables.slice(0, 3).join(', ')} and ${tables.length - 3} more tables`;
}
