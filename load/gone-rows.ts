// The rows a load deleted, per table: their referenced columns, kept in a temp table for the rest of
// the transaction, so each table referencing them (later in load order) can find the rows that now
// point at nothing (orphans.ts). Only the columns some foreign key references are kept.
import { compiled, ident, type SqlIdent } from '../schema/sql.ts';
import type { TableShape } from './shape.ts';
import { valueTypeText } from '../model/sql-types.ts';
import { referencedColumns, type Edge } from './foreign-keys.ts';
import type { LoadSession } from './session.ts';
import { recordGoneSql } from './gone-documents.ts';

/** The deleted rows' document, as the delete returns it (a name of the tool's own). */
const GONE_DOC = ident('etl_gone_document');

export class GoneRows {
  readonly #counts = new Map<string, number>();
  readonly #created = new Set<string>();

  constructor(
    private readonly session: LoadSession,
    private readonly edges: readonly Edge[],
  ) {}

  /**
   * Deletes the target rows matching `where` (alias t), keeping their referenced columns; with
   * `goneIn` (the run's id), their documents are recorded as gone too (gone-documents.ts).
   */
  async delete(shape: TableShape, where: string, goneIn: string | null = null): Promise<number> {
    const cols = referencedColumns(this.edges, shape.table.name).map(ident);
    const doc = goneIn !== null ? shape.docKey : null;
    if (cols.length === 0 && !doc) return this.session.count(compiled(`DELETE FROM ${shape.target} AS t WHERE ${where}`));
    if (cols.length > 0) await this.ensureTable(shape);
    const list = cols.join(', ');
    const returning = [...cols.map((c) => `t.${c}`), ...(doc ? [`t.${doc.id} AS ${GONE_DOC}`] : [])];
    const steps = [`d AS (DELETE FROM ${shape.target} AS t WHERE ${where} RETURNING ${returning.join(', ')})`];
    if (doc) steps.push(`r AS (${recordGoneSql('d', `d.${GONE_DOC}`, 'true')})`);
    if (cols.length > 0) steps.push(`k AS (INSERT INTO ${shape.temps.gone} (${list}) SELECT ${list} FROM d)`);
    const sql = `WITH ${steps.join(', ')} SELECT count(*)::bigint AS n FROM d`;
    const n = Number(((await this.session.run(compiled(sql, doc ? [shape.table.name, goneIn] : []))).rows[0] as { n: string }).n);
    if (cols.length > 0) this.#counts.set(shape.table.name, (this.#counts.get(shape.table.name) ?? 0) + n);
    return n;
  }

  /** The temp table of `table`'s deleted rows, or null when none was deleted. */
  of(table: string, shape: TableShape): SqlIdent | null {
    return (this.#counts.get(table) ?? 0) > 0 ? shape.temps.gone : null;
  }

  get tablesWithRows(): string[] {
    return [...this.#counts].filter(([, n]) => n > 0).map(([t]) => t);
  }

  private async ensureTable(shape: TableShape): Promise<void> {
    if (this.#created.has(shape.table.name)) return;
    const defs = referencedColumns(this.edges, shape.table.name).map((name) => {
      const c = shape.table.columns.find((x) => x.name === name)!;
      return `${ident(name)} ${valueTypeText(c.sqlType)}`;
    });
    await this.session.run(compiled(`CREATE TEMP TABLE ${shape.temps.gone} (${defs.join(', ')}) ON COMMIT DROP`));
    this.#created.add(shape.table.name);
  }
}
