/**
 * What a terminal line shows after its message: only the fields that add to it. A field whose
 * value the message already states is dropped, nested values are left to the JSON lines (written
 * whenever stdout is not a terminal: pipe it to read them), an error shows its message, and the line
 * stays bounded (120 characters of fields at most), so a record is one readable line instead of 300-600
 * characters of JSON repeated after the sentence that says the same thing.
 */
// event codes are for machines reading the JSON lines; the message says the same in words.
const FRAME = new Set(['level', 'time', 'pid', 'hostname', 'component', 'msg', 'event', 'log_format']);
const MAX_EXTRAS = 120;
const MAX_VALUE = 60;

export function terminalLine(record: Readonly<Record<string, unknown>>): string {
  const msg = typeof record.msg === 'string' ? record.msg : '';
  const component = typeof record.component === 'string' ? `(${record.component}) ` : '';
  const extras: string[] = [];
  let length = 0;
  let omitted = 0;
  for (const [key, value] of Object.entries(record)) {
    if (FRAME.has(key) || value === undefined || value === null) continue;
    const shown = shownValue(key, value);
    if (shown === undefined || msg.includes(shown)) continue;
    const field = `${key}=${shown.length > MAX_VALUE ? `${shown.slice(0, MAX_VALUE - 1)}…` : shown}`;
    if (length + field.length > MAX_EXTRAS) {
      omitted++;
      continue;
    }
    extras.push(field);
    length += field.length + 1;
  }
  if (omitted > 0) extras.push(`(+${omitted} more)`);
  return component + msg + (extras.length > 0 ? `  ${extras.join(' ')}` : '');
}

function shownValue(key: string, value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (key === 'err' && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') return (value as { message: string }).message;
  return undefined;
}
