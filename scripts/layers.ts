/**
 * The rooms of src/ and the direction imports run between them: the one table ARCHITECTURE.md
 * describes and `npm test` enforces (scripts/check-layers.ts). A file may import its own room and
 * any room on a lower level; rooms on one level do not import each other. Files directly under
 * src/ would be entry points, above every room. The pure cores (PURE) also import no I/O module
 * and call no timer.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** Top to bottom. Each level: its rooms (folders under src/), and why it sits there. */
export const LAYERS: ReadonlyArray<{ readonly rooms: readonly string[]; readonly why: string }> = [
  { rooms: ['cli'], why: 'the commands; the only place components are wired together (and the agent metric set)' },
  { rooms: ['demo'], why: "meshid dev --demo's workloads, started by cli" },
  { rooms: ['authz', 'sds', 'workload'], why: 'the services Envoy and workloads call; each declares what it reads' },
  { rooms: ['rotation'], why: 'the SVID manager and its pure policy: produces what the services serve' },
  { rooms: ['ca'], why: 'the CA protocol, its client and the reference CA' },
  { rooms: ['envoy'], why: "Envoy's services and message types, shared by sds and authz" },
  { rooms: ['identity'], why: 'SPIFFE IDs, X.509, SVID validation, bundles, the SVID and bundle types (pure)' },
  { rooms: ['observability'], why: 'logger, metrics registry, admin endpoint: a leaf components are handed' },
  { rooms: ['config'], why: 'the option-spec language, the loader and shared defaults every room declares its options with' },
  { rooms: ['lib'], why: 'Clock, errors, backoff, file watching, gRPC plumbing' },
  { rooms: ['generated'], why: 'TypeScript types of the protos, written by the build (scripts/build-protos.mjs): types only, never edited' },
];

/**
 * The pure cores (a room, or single files, under src/): they import no I/O module and call no
 * timer, so they are tested with tables. Checked on their own imports, not transitively.
 */
export const PURE: readonly string[] = [
  'identity/',
  'rotation/policy.ts',
  'authz/engine.ts',
  'authz/compile.ts',
  'authz/decide.ts',
  'authz/check-request.ts',
  'authz/partner-cas.ts',
  'authz/validate.ts',
  'ca/authority.ts',
  'ca/policy.ts',
  'ca/leaf-template.ts',
];

/** What "pure" excludes: the file system, the network, processes, gRPC, file watching, timers. */
const IO_MODULES = /^(node:)?(fs|fs\/promises|net|http|https|http2|tls|dgram|child_process|worker_threads|timers|timers\/promises)$|^@grpc\/grpc-js$|^chokidar$/;
const TIMER_CALLS = new Set(['setTimeout', 'setInterval', 'setImmediate']);

function isPure(inside: string): boolean {
  const p = inside.split(path.sep).join('/');
  return PURE.some((entry) => (entry.endsWith('/') ? p.startsWith(entry) : p === entry));
}

/** Calls to the global timer functions (the compiler's parse: comments and strings do not count). */
function timerCalls(fileName: string, text: string): Array<{ name: string; line: number }> {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: Array<{ name: string; line: number }> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && TIMER_CALLS.has(node.expression.text)) {
      found.push({ name: node.expression.text, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** "cli > demo > authz | sds | workload > ... > lib" */
export function layerOrder(): string {
  return LAYERS.map((l) => l.rooms.join(' | ')).join(' > ');
}

export interface LayerViolation {
  /** Path relative to the parent of the checked src/ folder, e.g. src/identity/pem.ts. */
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

function levelOf(room: string): number | undefined {
  const i = LAYERS.findIndex((l) => l.rooms.includes(room));
  return i < 0 ? undefined : i;
}

function below(level: number): string[] {
  return LAYERS.slice(level + 1).flatMap((l) => l.rooms);
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every import in srcDir that does not point down the table, in file order. */
export function checkLayers(srcDir: string): LayerViolation[] {
  const root = path.resolve(srcDir);
  const shown = (p: string) => path.relative(path.dirname(root), p);
  const violations: LayerViolation[] = [];
  for (const file of sourceFiles(root).sort()) {
    const [room, ...rest] = path.relative(root, file).split(path.sep);
    // A file directly under src/ is an entry point: it may import every room.
    const level = rest.length === 0 ? -1 : levelOf(room!);
    if (level === undefined) {
      violations.push({ file: shown(file), line: 1, message: `room "${room}" is not in the layer table (scripts/layers.ts): add it on the level its imports put it` });
      continue;
    }
    const text = fs.readFileSync(file, 'utf8');
    const pure = isPure(path.relative(root, file));
    if (pure) {
      for (const c of timerCalls(file, text)) violations.push({ file: shown(file), line: c.line, message: `calls ${c.name}: a pure core takes time as input (a Clock is injected where it is used)` });
    }
    // The compiler's own scan: static, type-only, re-exports and dynamic import() alike, never comments or strings.
    for (const ref of ts.preProcessFile(text, true, true).importedFiles) {
      const line = text.slice(0, ref.pos).split('\n').length;
      if (pure && IO_MODULES.test(ref.fileName)) {
        violations.push({ file: shown(file), line, message: `imports ${ref.fileName}: a pure core does no I/O and sets no timers (scripts/layers.ts PURE)` });
        continue;
      }
      if (!ref.fileName.startsWith('.')) continue; // a package or node: builtin
      const target = path.resolve(path.dirname(file), ref.fileName);
      const inside = path.relative(root, target);
      if (inside.startsWith('..') || path.isAbsolute(inside)) {
        violations.push({ file: shown(file), line, message: `imports ${ref.fileName}, outside src/: production code imports only src/ and packages` });
        continue;
      }
      const [targetRoom, ...targetRest] = inside.split(path.sep);
      if (targetRoom === room) continue;
      const targetLevel = targetRest.length === 0 ? -1 : levelOf(targetRoom!);
      // A room missing from the table is reported at its own files.
      if (targetLevel === undefined || targetLevel > level) continue;
      const allowed = below(level);
      const why =
        targetLevel === level
          ? `${room} and ${targetRoom} are on one level, and rooms on one level do not import each other`
          : `${targetRoom} is above ${room}`;
      violations.push({
        file: shown(file),
        line,
        message: `${room} imports ${targetRoom} (${ref.fileName}): ${why}; ${room} may import ${allowed.length ? allowed.join(', ') : 'no other room'}`,
      });
    }
  }
  return violations;
}

/** The check's report: what it prints, and whether it passed. */
export function layerReport(violations: readonly LayerViolation[]): { readonly ok: boolean; readonly text: string } {
  if (violations.length === 0) return { ok: true, text: `check-layers: every import points down (${layerOrder()})\n` };
  const s = violations.length === 1 ? '' : 's';
  const lines = violations.map((v) => `  ${v.file}:${v.line}: ${v.message}\n`);
  return { ok: false, text: `check-layers: ${violations.length} violation${s} of the layer order ${layerOrder()}\n${lines.join('')}` };
}
