// Whether a file is gzip-compressed, from its first two bytes: a dump's .bson(.gz) files and a
// packed run's archive are read by what they hold, not by their extension.
import { open } from 'node:fs/promises';

/** True when the file starts with the gzip magic bytes (the extension is not trusted). */
export async function isGzipFile(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}
