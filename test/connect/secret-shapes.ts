// Random passwords and the many shapes a person may (mis)write a connection string in, for the
// property tests of connect/: whatever the shape, the password must never be shown.
import assert from 'node:assert/strict';
import { Rng } from '../../sample/prng.ts';

/** A small deterministic PRNG (sample/prng.ts, mulberry32): the same seed gives the same cases. */
export function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const ALNUM = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
const SPECIAL = `!#$%&'()*+,-./:;<=>?@[]^_\`{|}~"\\`;

/**
 * A password of random runs of letters and digits (at least 5 in a row, so a leak of any part is
 * recognisable) and special characters. `blank`: may hold spaces (only the keyword form can carry them).
 */
export function randomPassword(rand: () => number, blank = false): string {
  const pick = (set: string) => set[Math.floor(rand() * set.length)]!;
  const specials = blank ? `${SPECIAL} ` : SPECIAL;
  let out = '';
  const runs = 2 + Math.floor(rand() * 3);
  for (let r = 0; r < runs; r += 1) {
    const len = 5 + Math.floor(rand() * 4);
    for (let i = 0; i < len; i += 1) out += pick(ALNUM);
    const sep = 1 + Math.floor(rand() * 3);
    if (r < runs - 1 || rand() < 0.5) for (let i = 0; i < sep; i += 1) out += pick(specials);
  }
  return rand() < 0.5 ? pick(SPECIAL.replace(/[ ']/g, '')) + out : out;
}

/** libpq's keyword-form quoting: 'value' with \' and \\ escaped. */
export function quoteKeyword(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** PostgreSQL connection strings holding `pw` raw (as a careless person writes them). */
export function postgresShapes(pw: string): string[] {
  const enc = encodeURIComponent(pw);
  return [
    `postgres//postgres:${pw}@127.0.0.1:5432/x`,
    `postgres:/postgres:${pw}@127.0.0.1:5432/x`,
    `postgresql:postgres:${pw}@127.0.0.1:5432/x`,
    `postgresql:/postgres:${pw}@127.0.0.1:1/x`,
    `postgres:postgres:${pw}@127.0.0.1`,
    `postgres://postgres:${pw}@127.0.0.1:notaport/x`,
    `postgres://postgres:${enc}@127.0.0.1:99999/x`,
    `postgresql://postgres:${pw}@127.0.0.1:1/x`,
    `postgresql://postgres:${enc}@127.0.0.1:1/x?sslmode=bogus`,
    `postgresql://postgres:${enc}@127.0.0.1:1/x?nosuchsetting=1`,
    `postgres:${pw}@127.0.0.1:5432/x`,
    `host=127.0.0.1 port=1 password=${quoteKeyword(pw)} dbname=x`,
    `host=127.0.0.1 password = ${quoteKeyword(pw)} port=notaport`,
    `host=127.0.0.1 password=${quoteKeyword(pw)} nosuchkey=1`,
    `host=127.0.0.1 password=${quoteKeyword(pw)} sslmode=sometimes`,
    `password=${quoteKeyword(pw)} host='127.0.0.1`,
  ];
}

export function mongoShapes(pw: string): string[] {
  return [`mongodb//admin:${pw}@127.0.0.1:1/x`, `mongodb:admin:${pw}@127.0.0.1:1/x`, `mongodb:/admin:${pw}@127.0.0.1:1`, `mongo://admin:${pw}@127.0.0.1:1/x`];
}

/** Fails when `text` holds the password or any run of 5+ letters and digits of it. */
export function assertNoPassword(text: string, pw: string, where: string): void {
  assert.ok(!text.includes(pw), `${where}: the password is shown\n${text}`);
  for (const run of pw.match(/[A-Za-z0-9]{5,}/g) ?? []) {
    assert.ok(!text.includes(run), `${where}: part of the password (${run}) is shown\n${text}`);
  }
}
