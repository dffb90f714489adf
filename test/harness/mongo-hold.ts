// A TCP proxy in front of a MongoDB server that holds one collection's read: the first `find` on
// that collection (and whatever follows it on the same connection) waits until the test releases
// it, or is answered with a server error. A test can then act while `etl extract` is provably
// half-way: every other collection flows as usual.
import net from 'node:net';
import { serialize } from 'bson';

export interface HeldFind {
  /** The server's URL through the proxy (same database and options). */
  readonly url: string;
  /** Resolves once the `find` arrived (and is being held). */
  readonly reached: Promise<void>;
  /** Sends the held bytes on: the read goes on as if nothing happened. */
  release(): void;
  /** Answers the held `find` with a server error (code 13, not one a client retries). */
  fail(message: string): void;
  close(): Promise<void>;
}

const OP_MSG = 2013;

/** The bytes a `find` command on `collection` starts with: `find: "<collection>"` as a BSON string element. */
function findElement(collection: string): Buffer {
  const name = Buffer.from(`${collection}\0`, 'utf8');
  const size = Buffer.alloc(4);
  size.writeInt32LE(name.length);
  return Buffer.concat([Buffer.from([0x02]), Buffer.from('find\0', 'utf8'), size, name]);
}

/** An OP_MSG reply to request `requestId` holding `doc`. */
function reply(requestId: number, doc: Record<string, unknown>): Buffer {
  const body = serialize(doc);
  const header = Buffer.alloc(20);
  header.writeInt32LE(21 + body.length, 0);
  header.writeInt32LE(0x7e57, 4);
  header.writeInt32LE(requestId, 8);
  header.writeInt32LE(OP_MSG, 12);
  header.writeUInt32LE(0, 16);
  // Header, flag bits, then one section of kind 0 (the body).
  return Buffer.concat([header, Buffer.from([0]), body]);
}

export async function holdFind(mongoUrl: string, collection: string): Promise<HeldFind> {
  const target = new URL(mongoUrl);
  const pattern = findElement(collection);
  const sockets = new Set<net.Socket>();
  let held: { chunks: Buffer[]; client: net.Socket; upstream: net.Socket } | null = null;
  let done = false;
  let reached!: () => void;
  const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    upstream.pipe(client);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (chunk: Buffer) => {
      if (held?.client === client) held.chunks.push(chunk);
      else if (!done && held === null && chunk.includes(pattern)) {
        held = { chunks: [chunk], client, upstream };
        reached();
      } else upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(mongoUrl);
  url.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url: url.toString(),
    reached: reachedPromise,
    release() {
      done = true;
      if (!held) return;
      for (const chunk of held.chunks) held.upstream.write(chunk);
      held = null;
    },
    fail(message) {
      done = true;
      if (!held) return;
      const requestId = held.chunks[0]!.readInt32LE(4);
      held.client.write(reply(requestId, { ok: 0, errmsg: message, code: 13, codeName: 'Unauthorized' }));
      // Whatever followed the find on that connection goes on.
      for (const chunk of held.chunks.slice(1)) held.upstream.write(chunk);
      held = null;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
