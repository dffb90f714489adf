// When PostgreSQL ends a connection (an administrator's pg_terminate_backend, a restart, one of the
// database's timeouts, the network), pg reports it to the query running at that moment. Between two
// queries it emits an 'error' event instead, which, unheard, crashed etl with a stack; and the next
// query failed with pg's own words ("Client has encountered a connection error and is not
// queryable"), which say nothing of why. Every client etl connects keeps the first such error here,
// so the failure that follows reports the server's reason.
import type { EventEmitter } from 'node:events';

const endedBy = new WeakMap<object, Error>();

/** Keeps the first error `client` meets between queries (and keeps it from being an uncaught 'error' event). */
export function watchForEnd(client: EventEmitter): void {
  client.on('error', (error: Error) => {
    if (!endedBy.has(client)) endedBy.set(client, error);
  });
}

// pg's words when the socket went away under a query, or before it; node's, from the socket.
const PG_WORDS = /connection error|Connection terminated|not queryable/i;
const SOCKET_WORDS = /ECONNRESET|EPIPE/;

/** The error to report for `error`, met on `client`: what ended the connection, when pg only says that it had ended. */
export function withEndReason(client: object, error: unknown): unknown {
  const reason = endedBy.get(client);
  return reason && reason !== error && isConnectionEnd(error) ? reason : error;
}

/**
 * PostgreSQL ended the session (SQLSTATE 57P01 administrator, 57P02/57P03 crash or shutdown, 57P05
 * idle-session timeout; 25P03 and 25P04 the idle-in-transaction and transaction timeouts; class 08
 * connection failures), or the socket closed without a word.
 */
export function isConnectionEnd(error: unknown): boolean {
  return postgresSaysEnded(error) || (error instanceof Error && SOCKET_WORDS.test(error.message));
}

/** isConnectionEnd, said by PostgreSQL or pg (a socket's words may come from anything else too: stdout, MongoDB). */
export function postgresSaysEnded(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^(57P0[1235]|25P0[34]|08...)$/.test(code)) return true;
  return error instanceof Error && PG_WORDS.test(error.message);
}

/** Why a connection may end, as hints say it. */
export const SERVER_ENDED = 'the server ended the connection (an administrator, a restart, a timeout or the network)';

/** What to do when it ended under a command that changes nothing unless it completes. */
export const RUN_AGAIN_HINT = `${SERVER_ENDED}: run the command again once PostgreSQL is back`;
