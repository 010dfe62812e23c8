/**
 * Strict structural check of a YAML/JSON document against a protobuf message type, the way Envoy
 * reads its bootstrap: every field must exist (proto or JSON name), enums must name a value, and
 * google.protobuf.Any is resolved through its "@type". protobufjs' own fromObject ignores unknown
 * fields, which would let a typo in a deployment file pass.
 */
import protobuf from 'protobufjs';

const SCALARS: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  bytes: (v) => typeof v === 'string',
  bool: (v) => typeof v === 'boolean',
  double: (v) => typeof v === 'number',
  float: (v) => typeof v === 'number',
};
const isInt = (v: unknown) => (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v));
const WRAPPERS = new Set(['BoolValue', 'StringValue', 'UInt32Value', 'UInt64Value', 'Int32Value', 'Int64Value', 'DoubleValue', 'FloatValue', 'BytesValue']);

export function checkMessage(root: protobuf.Root, type: protobuf.Type, value: unknown, at: string, errors: string[]): void {
  const name = type.fullName.replace(/^\./, '');
  if (name === 'google.protobuf.Duration') {
    if (typeof value !== 'string' || !/^-?\d+(\.\d+)?s$/.test(value)) errors.push(`${at}: a Duration must be a string like "0.2s"`);
    return;
  }
  if (name === 'google.protobuf.Struct' || name === 'google.protobuf.Value') return;
  if (name.startsWith('google.protobuf.') && WRAPPERS.has(type.name)) {
    if (typeof value === 'object') errors.push(`${at}: a ${type.name} takes a plain value`);
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    errors.push(`${at}: expected a ${name} message`);
    return;
  }
  let fields = type;
  const entries = Object.entries(value as Record<string, unknown>);
  if (name === 'google.protobuf.Any') {
    const url = (value as Record<string, unknown>)['@type'];
    if (typeof url !== 'string') {
      errors.push(`${at}: an Any needs "@type"`);
      return;
    }
    const target = root.lookup(url.slice(url.lastIndexOf('/') + 1));
    if (!(target instanceof protobuf.Type)) {
      errors.push(`${at}: unknown @type ${url}`);
      return;
    }
    fields = target;
  }
  for (const [key, v] of entries) {
    if (key === '@type' && name === 'google.protobuf.Any') continue;
    const field = fields.fields[key] ?? Object.values(fields.fields).find((f) => f.options?.json_name === key || camel(f.name) === key);
    if (!field) {
      errors.push(`${at}.${key}: no such field in ${fields.fullName.replace(/^\./, '')}`);
      continue;
    }
    checkField(root, field, v, `${at}.${key}`, errors);
  }
}

function checkField(root: protobuf.Root, field: protobuf.Field, v: unknown, at: string, errors: string[]): void {
  if (field instanceof protobuf.MapField) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      errors.push(`${at}: expected a map`);
      return;
    }
    for (const [k, item] of Object.entries(v as Record<string, unknown>)) checkValue(root, field, item, `${at}.${k}`, errors);
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(v)) {
      errors.push(`${at}: expected a list`);
      return;
    }
    v.forEach((item, i) => checkValue(root, field, item, `${at}[${i}]`, errors));
    return;
  }
  checkValue(root, field, v, at, errors);
}

function checkValue(root: protobuf.Root, field: protobuf.Field, v: unknown, at: string, errors: string[]): void {
  const t = field.resolvedType;
  if (t instanceof protobuf.Type) return checkMessage(root, t, v, at, errors);
  if (t instanceof protobuf.Enum) {
    if (!(typeof v === 'string' && v in t.values) && !(typeof v === 'number' && Object.values(t.values).includes(v))) {
      errors.push(`${at}: ${JSON.stringify(v)} is not a value of ${t.fullName.replace(/^\./, '')}`);
    }
    return;
  }
  const scalar = SCALARS[field.type];
  const ok = scalar ? scalar(v) : isInt(v);
  if (!ok) errors.push(`${at}: ${JSON.stringify(v)} is not a valid ${field.type}`);
}

function camel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
