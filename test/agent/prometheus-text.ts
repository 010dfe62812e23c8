/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), enough to check what
 * /metrics serves: # HELP and # TYPE lines, samples with labels, and which family each sample
 * belongs to. Anything it does not understand is an error, so a malformed scrape fails the test.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SUFFIXES: Record<string, readonly string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const help = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1} (${JSON.stringify(line)})`;
    if (line.trim() === '') return;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (kind === 'HELP') help.set(name, rest);
      else {
        if (families.has(name)) throw new Error(`${where}: a second TYPE for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: unknown type`);
        families.set(name, { name, type: rest, help: help.get(name) ?? '', samples: [] });
      }
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`${where}: sample without a # TYPE line for its family`);
    family.samples.push(sample);
  });
  return families;
}

function familyOf(sampleName: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  const exact = families.get(sampleName);
  if (exact) return exact;
  for (const [type, suffixes] of Object.entries(SUFFIXES)) {
    for (const suffix of suffixes) {
      if (!sampleName.endsWith(suffix)) continue;
      const f = families.get(sampleName.slice(0, -suffix.length));
      if (f?.type === type) return f;
    }
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( \d+)?$/.exec(line);
  if (!m) throw new Error(`${where}: not a sample line`);
  const labels = m[2] ? parseLabels(m[2].slice(1, -1), where) : {};
  return { name: m[1]!, labels, value: parseValue(m[3]!, where) };
}

function parseLabels(body: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const name = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(body.slice(i));
    if (!name) throw new Error(`${where}: bad label at ${body.slice(i)}`);
    i += name[0].length;
    let value = '';
    for (;;) {
      const c = body[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      i++;
      if (c === '"') break;
      if (c === '\\') {
        const e = body[i++];
        value += e === 'n' ? '\n' : e === '\\' ? '\\' : e === '"' ? '"' : `\\${e}`;
      } else value += c;
    }
    if (name[1]! in labels) throw new Error(`${where}: label ${name[1]} twice`);
    labels[name[1]!] = value;
    if (body[i] === ',') i++;
    else if (i < body.length) throw new Error(`${where}: expected , between labels`);
  }
  return labels;
}

function parseValue(s: string, where: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (Number.isNaN(v)) throw new Error(`${where}: bad value ${s}`);
  return v;
}

/** The samples of a family named exactly `name` whose labels include `labels`. */
export function samplesOf(families: Map<string, MetricFamily>, family: string, sampleName = family, labels: Record<string, string> = {}): Sample[] {
  const f = families.get(family);
  if (!f) return [];
  return f.samples.filter((s) => s.name === sampleName && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample's value; throws when there is none or more than one, so a test cannot pass on the wrong series. */
export function valueOf(families: Map<string, MetricFamily>, family: string, labels: Record<string, string> = {}, sampleName = family): number {
  const found = samplesOf(families, family, sampleName, labels);
  if (found.length !== 1) throw new Error(`${sampleName}${JSON.stringify(labels)}: expected one sample, found ${found.length}`);
  return found[0]!.value;
}
