// Inputs load/binary-copy.ts must refuse (NotEncodable), each beside a canonical neighbour it must
// encode, and inputs it may refuse or encode but never load differently from a CSV COPY.
//
// `csv` records what PostgreSQL 17's own COPY … (FORMAT csv) does with the refused file (the test
// checks it): 'accepts' means refusing is what keeps the load exact (the CSV COPY the caller falls
// back to reads the value by PostgreSQL's rules: `t` is true, `01` is 1, `2024-1-2` is a day, a
// last record without `\n` still loads), 'rejects' means the file is bad either way and the CSV
// COPY reports it (32768 for SMALLINT, year 0000, an unquoted CR, a wrong number of fields).
import type { TwinColumn } from './binary-oracle.ts';

export interface Refusal {
  readonly label: string;
  readonly columns: readonly TwinColumn[];
  /** Data records (after the header) the encoder must encode. */
  readonly good: string;
  /** The same records and one more the encoder must refuse. */
  readonly bad: string;
  readonly csv: 'accepts' | 'rejects';
  /** False for a field case's first-column twin: the encoder alone is checked (its CSV verdict is the last column's). */
  readonly onServer?: boolean;
}

const ID: TwinColumn = { name: 'id', ddl: 'INTEGER', kind: 'integer' };
const COLUMN: Record<string, TwinColumn> = {
  smallint: { name: 'x', ddl: 'SMALLINT', kind: 'smallint' },
  integer: { name: 'x', ddl: 'INTEGER', kind: 'integer' },
  bigint: { name: 'x', ddl: 'BIGINT', kind: 'bigint' },
  boolean: { name: 'x', ddl: 'BOOLEAN', kind: 'boolean' },
  timestamp: { name: 'x', ddl: 'TIMESTAMP', kind: 'timestamp' },
  date: { name: 'x', ddl: 'DATE', kind: 'date' },
  text: { name: 'x', ddl: 'TEXT', kind: 'text' },
  jsonb: { name: 'x', ddl: 'JSONB', kind: 'jsonb' },
};

/**
 * Field cases, the value in the last column and in the first: `1,<good>` (`<good>,1`) encodes;
 * the same record then `2,<bad>` (`<bad>,2`) is refused. The CSV COPY's verdict is the same both ways.
 */
function fields(kind: string, good: string, cases: Readonly<Record<string, 'accepts' | 'rejects'>>): Refusal[] {
  return Object.entries(cases).flatMap(([bad, csv]) => [
    { label: `${kind} ${JSON.stringify(bad)}, last column`, columns: [ID, COLUMN[kind]!], good: `1,${good}\n`, bad: `1,${good}\n2,${bad}\n`, csv },
    { label: `${kind} ${JSON.stringify(bad)}, first column`, columns: [COLUMN[kind]!, ID], good: `${good},1\n`, bad: `${good},1\n${bad},2\n`, csv, onServer: false },
  ]);
}

const A = 'accepts';
const R = 'rejects';

export const REFUSALS: readonly Refusal[] = [
  ...fields('timestamp', '2024-01-02 03:04:05.006', {
    '2024-1-2 03:04:05.006': A, '2024-01-02': A, '2024-01-02 03:04:05': A, '2024-01-02 03:04:05.06': A,
    '2024-01-02 03:04:05.0060': A, '2024-01-02 03:04:05.0061': A, '2024-01-02T03:04:05.006': A, '2024-01-02 03:04:05.006Z': A,
    '2024-01-02 03:04:05.006+02': A, ' 2024-01-02 03:04:05.006': A, '2024-01-02 03:04:05.006 ': A, '2024-01-02 3:04:05.006': A,
    '0000-01-01 00:00:00.000': R, '10000-01-01 00:00:00.000': A, '2024-01-02 03:04:05.006 BC': A, 'infinity': A, 'epoch': A,
    '2023-02-29 00:00:00.000': R, '1900-02-29 00:00:00.000': R, '2024-04-31 00:00:00.000': R, '2024-13-01 00:00:00.000': R,
    '2024-00-01 00:00:00.000': R, '2024-01-00 00:00:00.000': R, '2024-01-02 25:00:00.000': R, '2024-01-02 03:60:00.000': R,
    '2024-01-02 03:04:05.-06': A, '""': R,
  }),
  ...fields('date', '2024-01-02', {
    '2024-1-2': A, '20240102': A, '2024-01-02 00:00:00': A, '02/01/2024': A, ' 2024-01-02': A, '2024-01-02 BC': A,
    '10000-01-01': A, 'infinity': A, '0000-01-01': R, '2023-02-29': R, '1900-02-29': R, '2024-02-30': R, '2024-01-32': R,
    '2024-00-10': R, '+2024-01-02': R, '""': R,
  }),
  ...fields('boolean', 'true', {
    't': A, 'f': A, 'TRUE': A, 'False': A, 'yes': A, 'no': A, 'on': A, 'off': A, '1': A, '0': A, 'tru': A, ' true': A,
    'true ': A, 'maybe': R, '""': R,
  }),
  ...fields('smallint', '-32768', {
    '+1': A, ' 1': A, '1 ': A, '01': A, '00': A, '-0': A, '-00001': A, '0x10': A, '1_000': A, '32768': R, '-32769': R,
    '1.0': R, '1e3': R, '-': R, '٣': R, '""': R,
  }),
  ...fields('integer', '2147483647', {
    '+2147483647': A, '02147483647': A, '0x7fffffff': A, '0o17': A, '0b101': A, '2147483648': R, '-2147483649': R, '""': R,
  }),
  ...fields('bigint', '-9223372036854775808', {
    '007': A, '1_000': A, ' -1': A, '9223372036854775808': R, '-9223372036854775809': R, '99999999999999999999999': R, '""': R,
  }),
  ...fields('text', 'ok', {
    'a\rb': R, // an unquoted carriage return
    'ab\r': R, // a CRLF record end after `\n` ones
    'a"b': R, // a quote inside an unquoted field (opens a quoted section that never closes)
    'a"b"c': A, // …that closes again: the CSV COPY reads `abc`
    '"ab"c': A, // text after a closing quote
    '"ab': R, // a quoted field not closed before the end of the file
  }),
  // A timestamp or date followed by a byte other than `,` or `\n`: one field to the CSV COPY, not a
  // timestamp and the start of the next field (the CSV COPY is missing a field and rejects the file).
  { label: 'a timestamp with a 24th byte, then a field', columns: [COLUMN.timestamp!, ID], good: '2024-01-02 03:04:05.006,1\n', bad: '2024-01-02 03:04:05.006,1\n2024-01-02 03:04:05.006X2\n', csv: R },
  { label: 'a timestamp with a 24th digit, last field missing', columns: [COLUMN.timestamp!, ID], good: '2024-01-02 03:04:05.006,1\n', bad: '2024-01-02 03:04:05.006,1\n2024-01-02 03:04:05.0062\n', csv: R },
  { label: 'a timestamp of five decimals, then two integers', columns: [COLUMN.timestamp!, ID, { ...ID, name: 'n' }], good: '2024-01-02 03:04:05.006,1,2\n', bad: '2024-01-02 03:04:05.006,1,2\n2024-01-02 03:04:05.00612,3\n', csv: R },
  { label: 'a date with an 11th byte, then a field', columns: [COLUMN.date!, ID], good: '2024-01-02,1\n', bad: '2024-01-02,1\n2024-01-02X2\n', csv: R },
  { label: 'a date and a time in a date column, then a field', columns: [COLUMN.date!, ID], good: '2024-01-02,1\n', bad: '2024-01-02,1\n2024-01-02 2\n', csv: R },
  // Records with the wrong number of fields, or not ended by `\n`.
  { label: 'a record with too few fields', columns: [ID, COLUMN.text!], good: '1,ok\n', bad: '1,ok\n2\n', csv: R },
  { label: 'a record with too many fields', columns: [ID, COLUMN.text!], good: '1,ok\n', bad: '1,ok\n2,a,b\n', csv: R },
  { label: 'an empty line in a two-column file', columns: [ID, COLUMN.text!], good: '1,ok\n', bad: '1,ok\n\n', csv: R },
  { label: 'a last record without its \\n', columns: [ID, COLUMN.text!], good: '1,ok\n', bad: '1,ok\n2,ab', csv: A },
  { label: 'a last record without its \\n, ending in a quoted field', columns: [ID, COLUMN.text!], good: '1,ok\n', bad: '1,ok\n2,"a\nb"', csv: A },
  { label: 'a last integer without its \\n', columns: [ID], good: '1\n', bad: '1\n2', csv: A },
];

/** Inputs outside transform's dialect that the encoder may refuse or encode, never load differently. */
export interface Exotic {
  readonly label: string;
  readonly columns: readonly TwinColumn[];
  /** Data records, after the header. */
  readonly body: Buffer;
  /** The header record when not csvHeader's. */
  readonly header?: string;
}

function exotic(label: string, kind: string, body: string | Buffer): Exotic {
  return { label, columns: kind === 'id' ? [ID] : [ID, COLUMN[kind]!], body: typeof body === 'string' ? Buffer.from(body) : body };
}

const VARCHAR5: TwinColumn = { name: 'x', ddl: 'VARCHAR(5)', kind: 'text' };
const ONLY_TEXT: TwinColumn = { name: 'x', ddl: 'TEXT', kind: 'text' };

export const EXOTICS: readonly Exotic[] = [
  exotic('timestamp 24:00:00 (PostgreSQL reads the next day)', 'timestamp', '1,2024-01-02 24:00:00.000\n'),
  exotic('timestamp second 60 (PostgreSQL reads the next minute)', 'timestamp', '1,2024-12-31 23:59:60.000\n'),
  exotic('a quoted canonical timestamp', 'timestamp', '1,"2024-01-02 03:04:05.006"\n'),
  exotic('a quoted integer', 'integer', '1,"42"\n'),
  exotic('a quoted boolean', 'boolean', '1,"false"\n'),
  exotic('a quoted date', 'date', '1,"2024-01-02"\n'),
  exotic('an unquoted \\. field beside another', 'text', '1,\\.\n'),
  exotic('an unquoted empty text (NULL) and a quoted one', 'text', '1,\n2,""\n'),
  { label: 'a \\. line in a one-column file (end of data for COPY)', columns: [ONLY_TEXT], body: Buffer.from('a\n\\.\nb\n') },
  { label: 'an empty line in a one-column file (NULL)', columns: [ONLY_TEXT], body: Buffer.from('a\n\n""\n') },
  { label: 'a CRLF file (header and records)', columns: [ID, ONLY_TEXT], body: Buffer.from('1,a\r\n2,b\r\n'), header: 'id,x\r\n' },
  { label: 'a header record with a quoted newline', columns: [ID, ONLY_TEXT], body: Buffer.from('1,a\n'), header: '"i\nd",x\n' },
  exotic('a NUL byte in text', 'text', Buffer.from('1,a\0b\n', 'latin1')),
  exotic('invalid UTF-8 (a lone 0xff)', 'text', Buffer.from([0x31, 0x2c, 0xff, 0x0a])),
  exotic('invalid UTF-8 (an overlong /)', 'text', Buffer.from([0x31, 0x2c, 0xc0, 0xaf, 0x0a])),
  exotic('invalid UTF-8 (an encoded surrogate)', 'text', Buffer.from([0x31, 0x2c, 0xed, 0xa0, 0x80, 0x0a])),
  exotic('invalid UTF-8 (a cut 4-byte sequence)', 'text', Buffer.from([0x31, 0x2c, 0xf0, 0x9f, 0x98, 0x0a])),
  exotic('jsonb that is not JSON', 'jsonb', '1,{\n'),
  exotic('jsonb with \\u0000', 'jsonb', '1,"""\\u0000"""\n'),
  exotic('jsonb with a lone surrogate escape', 'jsonb', '1,"""\\ud800"""\n'),
  exotic('jsonb quoted empty', 'jsonb', '1,""\n'),
  exotic('jsonb with spaces and duplicate keys', 'jsonb', '1," {""a"" : 1, ""a"": [ 2 ] } "\n'),
  exotic('jsonb 1e400 and -0.0', 'jsonb', '1,"[1e400, -0.0, 0.10]"\n'),
  { label: 'VARCHAR(5) too long', columns: [ID, VARCHAR5], body: Buffer.from('1,abcdef\n') },
  { label: 'VARCHAR(5) with trailing spaces beyond 5 (PostgreSQL cuts them)', columns: [ID, VARCHAR5], body: Buffer.from('1,"ab😀de   "\n') },
  exotic('a field in an integer column that is the NULL marker quoted', 'id', '""\n'),
];

/**
 * The shapes of csv-spectrum's fixtures (npm csv-spectrum 2.0.0, github maxogden/csv-spectrum), in
 * this dialect's terms, written here (the package is not a dependency). `encodes`: transform could
 * write it (records ended by `\n`); `refuses`: what the fixture does outside the dialect (CRLF
 * record ends, no `\n` after the last record; the CSV COPY accepts both, so refusing keeps it exact).
 */
export interface SpectrumCase {
  readonly label: string;
  readonly columns: readonly TwinColumn[];
  readonly file: string;
  readonly expect: 'encodes' | 'refuses';
}

const texts = (...names: string[]): TwinColumn[] => names.map((name) => ({ name, ddl: 'TEXT', kind: 'text' }));

export const SPECTRUM: readonly SpectrumCase[] = [
  { label: 'simple', columns: texts('a', 'b', 'c'), file: 'a,b,c\n1,2,3\n', expect: 'encodes' },
  { label: 'simple_crlf', columns: texts('a', 'b', 'c'), file: 'a,b,c\r\n1,2,3\r\n', expect: 'refuses' },
  { label: 'comma_in_quotes', columns: texts('first', 'city', 'zip'), file: 'first,city,zip\nAda,"Sometown, XY",04567\n', expect: 'encodes' },
  { label: 'comma_in_quotes, no final newline', columns: texts('first', 'city', 'zip'), file: 'first,city,zip\nAda,"Sometown, XY",04567', expect: 'refuses' },
  { label: 'a zip code 04567 into an INTEGER', columns: [{ name: 'zip', ddl: 'INTEGER', kind: 'integer' }], file: 'zip\n04567\n', expect: 'refuses' },
  { label: 'empty (quoted empty fields)', columns: texts('a', 'b', 'c'), file: 'a,b,c\n1,"",""\n2,3,4\n', expect: 'encodes' },
  { label: 'empty_crlf, no final newline', columns: texts('a', 'b', 'c'), file: 'a,b,c\r\n1,"",""\r\n2,3,4', expect: 'refuses' },
  { label: 'escaped_quotes', columns: texts('a', 'b'), file: 'a,b\n1,"ho ""ho"" ho"\n3,4\n', expect: 'encodes' },
  { label: 'json', columns: [{ name: 'key', ddl: 'INTEGER', kind: 'integer' }, { name: 'val', ddl: 'JSONB', kind: 'jsonb' }], file: 'key,val\n1,"{""kind"": ""Line"", ""at"": [12.0, 0.25]}"\n', expect: 'encodes' },
  { label: 'newlines', columns: texts('a', 'b', 'c'), file: 'a,b,c\n1,2,3\n"Long ago \nand far",5,6\n7,8,9\n', expect: 'encodes' },
  { label: 'newlines_crlf', columns: texts('a', 'b', 'c'), file: 'a,b,c\r\n1,2,3\r\n"Long ago \r\nand far",5,6\r\n7,8,9\r\n', expect: 'refuses' },
  { label: 'quotes_and_newlines', columns: texts('a', 'b'), file: 'a,b\n1,"ho \n""ho"" \nho"\n3,4\n', expect: 'encodes' },
  { label: 'utf8', columns: texts('a', 'b', 'c'), file: 'a,b,c\n1,2,3\n4,5,ʤ\n', expect: 'encodes' },
  { label: 'null (an open pull request): unquoted empty, "NULL", NULL', columns: texts('a', 'b', 'c'), file: 'a,b,c\n1,,2\n3,"NULL",4\n5,NULL,6\n', expect: 'encodes' },
];
