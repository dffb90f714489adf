// Load order: every table after the tables it references. export_order only breaks ties (then the
// file order), because the seed's groups alone put coachings beside users_quizzs, which it references.

export interface OrderNode {
  readonly name: string;
  readonly exportOrder: number;
  /** Position in pipeline.yaml: the last tie-breaker, so the order is stable. */
  readonly index: number;
  /** Tables this one references (self-references are ignored: a row may point at its own table). */
  readonly references: readonly string[];
}

/** Kahn's algorithm, picking the smallest (export_order, file index) among the ready tables. */
export function loadOrder(nodes: readonly OrderNode[]): string[] | null {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const n of nodes) {
    const refs = new Set(n.references.filter((r) => r !== n.name && byName.has(r)));
    waiting.set(n.name, refs.size);
    for (const r of refs) dependents.set(r, [...(dependents.get(r) ?? []), n.name]);
  }
  const before = (a: OrderNode, b: OrderNode) => a.exportOrder - b.exportOrder || a.index - b.index;
  const ready = nodes.filter((n) => waiting.get(n.name) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    ready.sort(before);
    const next = ready.shift()!;
    order.push(next.name);
    for (const d of dependents.get(next.name) ?? []) {
      const left = waiting.get(d)! - 1;
      waiting.set(d, left);
      if (left === 0) ready.push(byName.get(d)!);
    }
  }
  return order.length === nodes.length ? order : null;
}

/**
 * The foreign-key cycles, each as the list of tables along it (first table repeated at the end
 * is left to the caller). One cycle per strongly connected component, found by depth-first search.
 */
export function findCycles(nodes: readonly OrderNode[]): string[][] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const ref of byName.get(name)?.references ?? []) {
      if (ref === name || !byName.has(ref)) continue;
      const s = state.get(ref);
      if (s === 'visiting') {
        const cycle = stack.slice(stack.indexOf(ref));
        const key = [...cycle].sort().join('\u0000');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(cycle);
        }
      } else if (s === undefined) {
        visit(ref);
      }
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const n of nodes) if (!state.has(n.name)) visit(n.name);
  return cycles;
}
