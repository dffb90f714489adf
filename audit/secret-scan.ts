// What may never leave the machine inside a packed run: a URL with a password, a field that holds a
// password, or a configured secret value. Manifests are written through connect/redact.ts, so this
// is the second line of defence, run on the exact bytes that go into the archive.

export interface SecretFinding {
  /** Which file the secret is in (manifest.json, pipeline.yaml). */
  file: string;
  /** JSON path of the value or line number in the file. */
  where: string;
  /** What was found, already redacted: never the secret itself. */
  what: string;
}

// scheme://user:password@  (userinfo with a colon). A redacted password (***) is fine.
const URL_WITH_PASSWORD = /\b([a-z][a-z0-9+.-]*):\/\/([^\s/@:"'`]+):([^\s/@"'`]*)@/gi;
const SECRET_KEY = /pass(word|wd|phrase)?$|^pwd$|secret/i;

function redactedPassword(pass: string): boolean {
  return /^(\*+|%2A(%2A)*)$/i.test(pass);
}

/** URLs with a real password in free text, one finding per hit. */
export function scanText(file: string, text: string, secrets: readonly string[] = []): SecretFinding[] {
  const findings: SecretFinding[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    for (const m of line.matchAll(URL_WITH_PASSWORD)) {
      if (redactedPassword(m[3]!)) continue;
      findings.push({ file, where: `line ${i + 1}`, what: `a URL with a password (${m[1]}://${m[2]}:***@…)` });
    }
    for (const secret of secrets) {
      if (secret.length >= 4 && line.includes(secret)) findings.push({ file, where: `line ${i + 1}`, what: 'a configured password or passphrase' });
    }
  });
  return findings;
}

/** Fields named like a password with a value, anywhere in a JSON document. */
export function scanJson(file: string, value: unknown): SecretFinding[] {
  const findings: SecretFinding[] = [];
  const walk = (v: unknown, where: string): void => {
    if (v === null || typeof v !== 'object') return;
    for (const [key, child] of Object.entries(v as Record<string, unknown>)) {
      const path = Array.isArray(v) ? `${where}[${key}]` : where ? `${where}.${key}` : key;
      // Only text can be a password; a count or an object under such a key (a skip reason, a table) is not.
      if (SECRET_KEY.test(key) && typeof child === 'string' && child !== '' && !redactedPassword(child)) {
        findings.push({ file, where: path, what: `a "${key}" field with a value` });
      }
      walk(child, path);
    }
  };
  walk(value, '');
  return findings;
}
