/**
 * A CheckRequest in the protobuf JSON mapping (camelCase or the proto's snake_case names) to the
 * message object grpc-js would hand the server. Field names are resolved against Envoy's own
 * message types, so a misspelt field is an error naming its path, map keys (header names) are
 * left alone, and the well-known types (Struct, Timestamp, wrappers) take their JSON forms.
 */
import protobuf from 'protobufjs';
import { type CheckRequest, envoyProtos } from '../envoy/protos.js';
import { TO_OBJECT_OPTIONS } from '../lib/proto-services.js';
import { MeshidError } from '../lib/errors.js';

export function checkRequestFromJson(json: unknown): CheckRequest {
  const type = envoyProtos().CheckRequest;
  const normalized = normalizeMessage(type, json, 'CheckRequest');
  let message: protobuf.Message;
  try {
    message = type.fromObject(normalized);
  } catch (e) {
    throw invalid(`CheckRequest: ${(e as Error).message}`);
  }
  return type.toObject(message, TO_OBJECT_OPTIONS) as CheckRequest;
}

function invalid(message: string): MeshidError {
  return new MeshidError('check_request_invalid', message);
}

function lowerCamel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function normalizeMessage(type: protobuf.Type, json: unknown, path: string): Record<string, unknown> {
  if (!isObject(json)) throw invalid(`${path}: expected a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key] ?? type.fieldsArray.find((f) => lowerCamel(f.name) === key || f.options?.json_name === key);
    if (!field) throw invalid(`${path}.${key}: unknown field of ${type.fullName.slice(1)}`);
    if (value === null) continue; // JSON null: the field's default
    out[field.name] = normalizeField(field, value, `${path}.${key}`);
  }
  return out;
}

function normalizeField(field: protobuf.Field, value: unknown, path: string): unknown {
  field.resolve();
  const element = (v: unknown, p: string) => (field.resolvedType instanceof protobuf.Type ? normalizeValue(field.resolvedType, v, p) : v);
  if (field.map) {
    if (!isObject(value)) throw invalid(`${path}: expected a JSON object (a map)`);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, element(v, `${path}[${JSON.stringify(k)}]`)]));
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw invalid(`${path}: expected a JSON array`);
    return value.map((v, i) => element(v, `${path}[${i}]`));
  }
  return element(value, path);
}

const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value', 'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'].map((n) => `.google.protobuf.${n}`));

/** A message value, with the JSON forms of the well-known types. */
function normalizeValue(type: protobuf.Type, value: unknown, path: string): unknown {
  switch (type.fullName) {
    case '.google.protobuf.Struct':
      return structOf(value, path);
    case '.google.protobuf.Value':
      return valueOf(value, path);
    case '.google.protobuf.ListValue':
      if (!Array.isArray(value)) throw invalid(`${path}: expected a JSON array`);
      return { values: value.map((v, i) => valueOf(v, `${path}[${i}]`)) };
    case '.google.protobuf.Timestamp':
      return timestampOf(value, path);
    case '.google.protobuf.Any':
      throw invalid(`${path}: google.protobuf.Any values are not supported in a JSON CheckRequest`);
    default:
      if (WRAPPERS.has(type.fullName)) return { value };
      return normalizeMessage(type, value, path);
  }
}

function structOf(value: unknown, path: string): unknown {
  if (!isObject(value)) throw invalid(`${path}: expected a JSON object (a Struct)`);
  return { fields: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, valueOf(v, `${path}.${k}`)])) };
}

function valueOf(v: unknown, path: string): unknown {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map((x, i) => valueOf(x, `${path}[${i}]`)) } };
  return { structValue: structOf(v, path) };
}

function timestampOf(value: unknown, path: string): unknown {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw invalid(`${path}: expected an RFC 3339 timestamp string`);
  const frac = /\.(\d{1,9})/.exec(value as string)?.[1] ?? '';
  return { seconds: String(Math.floor(ms / 1000)), nanos: Number(frac.padEnd(9, '0')) };
}
