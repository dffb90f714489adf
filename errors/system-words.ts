// How etl says what the operating system refused, in words: one table for every stage, so a file
// that cannot be read or a folder that cannot be made is said the same way wherever it is met, and
// the operator reads "permission denied", not `EACCES: permission denied, open '…'`.

const WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'it does not exist',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  EEXIST: 'a file of that name is in the way',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'an input/output error: the disk or the file system failed',
};

/** The system's error code when `cause` is an error of a system call, else undefined. */
export function systemCode(cause: unknown): string | undefined {
  const e = cause as NodeJS.ErrnoException | null;
  return e?.syscall !== undefined && typeof e.code === 'string' ? e.code : undefined;
}

/** What the system refused, in words (its own message for a code the table does not know). */
export function systemWords(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  return (code && WORDS[code]) ?? (cause instanceof Error ? cause.message : String(cause));
}

/** True when the refusal is one of permission: the hint is then about the user, not the disk. */
export function isPermissionDenied(cause: unknown): boolean {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  return code === 'EACCES' || code === 'EPERM';
}
