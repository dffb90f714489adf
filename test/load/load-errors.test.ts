// PostgreSQL's errors name our temp tables (etl_keys_17); the message says what they stand for.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DatabaseError } from 'pg';
import { toLoadError } from '../../load/errors.ts';

test('each temp table name is told whole: etl_keys_1 is not the start of etl_keys_17', () => {
  const tempNames = { etl_keys_1: 'appointment_types keys', etl_keys_17: 'messages keys', etl_stage_17: 'messages' };
  const error = new DatabaseError('relation "etl_keys_17" does not exist', 0, 'error');
  error.code = '42P01';
  error.detail = 'Key (id)=(x) is still referenced from table etl_stage_17, and etl_keys_1.';
  const loadError = toLoadError(error, { table: 'messages', step: 'removing the rows that left the table', tempNames });
  assert.equal(
    loadError.message,
    'messages: removing the rows that left the table failed: relation "messages keys" does not exist (Key (id)=(x) is still referenced from table messages, and appointment_types keys.)',
  );
});
