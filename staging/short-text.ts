// The start of a long text, as the rejects files show a value: at most `max` UTF-16 units, then `…`.
// A cut between the two halves of a surrogate pair (an emoji) would leave a lone surrogate, which
// is not text (UTF-8 cannot encode it; JSON escapes it as `\ud83d`): the half pair is left out too.

export function shortText(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return `${cut}…`;
}
