// A file whose reads wait for the test: the file is a FIFO, so a process that reads it waits, at that
// read, until the test answers. Tests use it to hold a process at a known point of its work (between a
// check and the write that follows it) while another process runs: an order they control, not a sleep.
//
//   await mkfifoAt(manifest);
//   const first = await nextRead(manifest);   // once the process has opened it: holds that read
//   await answer(first, bytes);               // the process reads `bytes`, and goes on
import { execFileSync } from 'node:child_process';
import { open, rm, type FileHandle } from 'node:fs/promises';

/** Replaces whatever is at `file` by a FIFO. */
export async function mkfifoAt(file: string): Promise<void> {
  await rm(file, { force: true });
  execFileSync('mkfifo', [file]);
}

/**
 * Opens the FIFO `file` for writing (this returns once a reader has opened it) and puts a new FIFO in
 * its place, so that the next read of `file` waits for the next call; answering the one returned ends
 * its reader's read (no other writer ever opens it).
 */
export async function nextRead(file: string): Promise<FileHandle> {
  const reading = await open(file, 'w');
  await mkfifoAt(file);
  return reading;
}

/** What the held read gets: `bytes`, then the end of the file. */
export async function answer(reading: FileHandle, bytes: Buffer): Promise<void> {
  await reading.write(bytes);
  await reading.close();
}
