// The few HTML helpers the report needs: every text goes through escapeHtml, tables are built from
// rows of cells, numbers carry data-* attributes so a test (or an auditor's script) can read them.
import { escapeControls } from '../errors/printable.ts';

/**
 * Text as HTML. Its controls are shown as \uXXXX, as on a terminal: a bidi override from the data
 * would turn the rest of its cell or line around, and a NUL or an escape would be invisible.
 */
export function escapeHtml(text: string): string {
  return escapeControls(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A cell: text, or a number (right-aligned, thousands separators, data-value for machines). */
export type HtmlCell = string | number | null | { readonly html: string };

function cell(c: HtmlCell, field?: string): string {
  const attr = field ? ` data-field="${escapeHtml(field)}"` : '';
  if (c === null) return `<td class="n"${attr}>–</td>`;
  if (typeof c === 'number') return `<td class="n"${attr} data-value="${c}">${c.toLocaleString('en-US')}</td>`;
  if (typeof c === 'string') return `<td${attr}>${escapeHtml(c)}</td>`;
  return `<td${attr}>${c.html}</td>`;
}

/** A table; `fields` names the columns for data-field attributes, `rowKey` tags each row. */
export function table(headers: readonly string[], rows: readonly (readonly HtmlCell[])[], options: { fields?: readonly string[]; rowKeys?: readonly string[]; id?: string } = {}): string {
  const head = `<tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = rows
    .map((r, i) => {
      const key = options.rowKeys?.[i];
      return `<tr${key !== undefined ? ` data-key="${escapeHtml(key)}"` : ''}>${r.map((c, j) => cell(c, options.fields?.[j])).join('')}</tr>`;
    })
    .join('\n');
  return `<table${options.id ? ` id="${escapeHtml(options.id)}"` : ''}><thead>${head}</thead><tbody>\n${body}\n</tbody></table>`;
}

export function section(id: string, title: string, body: string): string {
  return `<section id="${escapeHtml(id)}"><h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;
}
