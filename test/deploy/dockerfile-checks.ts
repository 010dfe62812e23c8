/**
 * The Dockerfile, parsed into stages and instructions, and the checks of what the meshid image
 * needs. There is no Docker engine here, so the image is never built: these checks read the
 * Dockerfile against the repository (what the build context holds, what the code loads at run
 * time) instead. Each check returns its problems over plain data, so a test can break a copy.
 */
import path from 'node:path';

export interface Instruction {
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  readonly rest: string;
  readonly line: number;
}

export interface Stage {
  readonly base: string;
  readonly name?: string;
  readonly instructions: readonly Instruction[];
}

export type Dockerfile = readonly Stage[];

/** Splits a Dockerfile into stages; comments and parser directives are dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) return;
    if (pending !== '' && line.trimStart().startsWith('#')) return; // comments inside a continued instruction
    if (pending === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    instructions.push({ keyword: m[1]!.toUpperCase(), rest: m[2]!, line: startLine });
  });
  const stages: Array<{ base: string; name?: string; instructions: Instruction[] }> = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [base = '', as, name] = ins.rest.replace(/--\S+\s+/g, '').split(/\s+/);
      stages.push({ base, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return stages;
}

/** Words of an exec-form (JSON array) instruction, or undefined for shell form. */
export function execForm(rest: string): string[] | undefined {
  if (!rest.trimStart().startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(rest);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface Copy {
  readonly from?: string;
  readonly sources: readonly string[];
  /** Absolute path in the image. */
  readonly dest: string;
  /** A trailing "/" or several sources: dest is a directory that receives the sources. */
  readonly destIsDir: boolean;
  readonly line: number;
}

/** COPY/ADD instructions of a stage with their destinations made absolute against WORKDIR. */
export function copiesOf(stage: Stage): Copy[] {
  const out: Copy[] = [];
  let workdir = '/';
  for (const ins of stage.instructions) {
    if (ins.keyword === 'WORKDIR') workdir = path.posix.resolve(workdir, ins.rest.trim());
    if (ins.keyword !== 'COPY' && ins.keyword !== 'ADD') continue;
    const flags: Record<string, string> = {};
    let rest = ins.rest;
    for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
      flags[m[1]!] = m[2] ?? '';
      rest = rest.slice(m[0].length);
    }
    const words = execForm(rest) ?? rest.split(/\s+/).filter((w) => w);
    const dest = words.at(-1)!;
    const sources = words.slice(0, -1);
    out.push({
      ...(flags.from ? { from: flags.from } : {}),
      sources,
      dest: path.posix.resolve(workdir, dest),
      destIsDir: dest.endsWith('/') || sources.length > 1,
      line: ins.line,
    });
  }
  return out;
}

/** The WORKDIR in effect at the end of a stage. */
function finalWorkdir(stage: Stage): string {
  return stage.instructions.filter((i) => i.keyword === 'WORKDIR').reduce((wd, i) => path.posix.resolve(wd, i.rest.trim()), '/');
}

export interface Origin {
  /** The stage it was copied from; absent: the build context. */
  readonly from?: string;
  readonly source: string;
}

/**
 * Where a path of a stage's image may come from, latest COPY first (later layers win). A source
 * directory's contents land in dest; a file lands on dest, or in it when dest is a directory.
 * Whether a stage's source is a file or a directory is not known here, so both readings are candidates.
 */
export function originsOf(stage: Stage, imagePath: string, exists: (contextPath: string) => boolean): Origin[] {
  const target = path.posix.normalize(imagePath);
  const out: Origin[] = [];
  for (const c of copiesOf(stage).reverse()) {
    if (target !== c.dest && !target.startsWith(`${c.dest}/`)) continue;
    const rest = target.slice(c.dest.length).replace(/^\//, '');
    for (const src of c.sources) {
      // From a stage, trust the stage; from the build context, the source must be there.
      const at = (source: string) => (c.from ? out.push({ from: c.from, source }) : exists(source) && out.push({ source }));
      if (c.destIsDir && rest === path.posix.basename(src)) at(src);
      if (!c.destIsDir && rest === '') at(src);
      if (rest !== '') at(path.posix.join(src, rest));
    }
  }
  return out;
}

export interface Repository {
  /** Whether a path (relative to the build context, the repository root) exists. */
  exists(p: string): boolean;
  /** package.json's "type", dependencies and devDependencies. */
  readonly packageJson: { type?: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
  /** Package-relative paths meshid reads at run time (packagePath(...) in src). */
  readonly runtimeFiles: readonly string[];
  /** Packages src loads at run time (imports, require.resolve, pino transport targets). */
  readonly runtimePackages: readonly string[];
  /** Top-level paths tsconfig.json's "include" compiles (src, test, ...). */
  readonly tsconfigRoots: readonly string[];
  /** Names of every package `npm ls --omit=dev --all` lists: what `npm ci --omit=dev` installs. */
  readonly productionPackages: readonly string[];
}

function problems(check: (report: (p: string) => void) => void): string[] {
  const out: string[] = [];
  check((p) => out.push(p));
  return out;
}

const finalStage = (stages: readonly Stage[]): Stage => stages.at(-1)!;
const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.rest);
const installs = (stage: Stage) => runs(stage).filter((r) => /\bnpm\s+(ci|install|i)\b/.test(r));
const isProductionInstall = (run: string) => /\bnpm\s+ci\b/.test(run) && /--omit[= ]dev\b/.test(run);
const builds = (stage: Stage) => runs(stage).some((r) => /\b(tsc|npm run build)\b/.test(r));

/** Several stages: the toolchain builds, the last stage only runs. */
export function checkMultiStage(stages: readonly Stage[]): string[] {
  return problems((report) => {
    if (stages.length < 2) report(`the Dockerfile has ${stages.length} stage(s): build and runtime must be separate stages`);
    const last = finalStage(stages);
    if (builds(last)) report('the final stage compiles TypeScript: build in an earlier stage and copy dist/');
  });
}

/** node_modules in the final image is an `npm ci --omit=dev` install and nothing else. */
export function checkProductionDependencies(stages: readonly Stage[]): string[] {
  return problems((report) => {
    const last = finalStage(stages);
    const sources: string[] = [];
    for (const run of installs(last)) {
      sources.push('a RUN in the final stage');
      if (!isProductionInstall(run)) report(`the final stage runs "${run}", which is not "npm ci --omit=dev"`);
    }
    for (const c of copiesOf(last)) {
      if (!c.sources.some((s) => /(^|\/)node_modules\/?$/.test(s))) continue;
      const from = stages.find((s) => s.name === c.from);
      sources.push(`COPY --from=${c.from ?? '(context)'}`);
      if (!from) {
        report(`line ${c.line}: node_modules is copied from ${c.from ? `"${c.from}", not a stage` : 'the build context'}`);
        continue;
      }
      const its = installs(from);
      if (its.length === 0 || !its.every(isProductionInstall)) {
        report(`line ${c.line}: node_modules comes from stage ${from.name}, which installs with ${JSON.stringify(its)}, not only "npm ci --omit=dev"`);
      }
    }
    if (sources.length === 0) report('the final stage gets no node_modules: meshid cannot run without its dependencies');
  });
}

/** The last USER of the final stage is a numeric non-root uid (Kubernetes' runAsNonRoot can only verify a number). */
export function checkUser(stages: readonly Stage[]): string[] {
  return problems((report) => {
    const user = finalStage(stages).instructions.filter((i) => i.keyword === 'USER').at(-1)?.rest.trim();
    if (!user) {
      report('the final stage has no USER: the image runs as root');
      return;
    }
    const uid = user.split(':')[0]!;
    if (uid === 'root' || uid === '0') report(`USER ${user} is root`);
    else if (!/^\d+$/.test(uid)) report(`USER ${user} is a name: Kubernetes runAsNonRoot cannot verify it is not root (use a numeric uid)`);
  });
}

/**
 * ENTRYPOINT runs node on dist/src/cli/main.js as compiled by an earlier stage, in exec form (so
 * SIGINT and SIGTERM reach meshid, which then removes its sockets), with package.json beside dist
 * (it says "type": "module", without which Node cannot load the compiled ESM).
 */
export function checkEntrypoint(stages: readonly Stage[], repo: Repository): string[] {
  return problems((report) => {
    const last = finalStage(stages);
    const ep = last.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
    if (!ep) {
      report('the final stage has no ENTRYPOINT');
      return;
    }
    const words = execForm(ep.rest);
    if (!words) {
      report(`ENTRYPOINT ${ep.rest} is in shell form: signals go to /bin/sh, not meshid`);
      return;
    }
    const script = words.find((w) => w.endsWith('.js'));
    if (words[0] !== 'node' || !script) {
      report(`ENTRYPOINT ${ep.rest} does not run node on meshid's main.js`);
      return;
    }
    const imagePath = path.posix.resolve(finalWorkdir(last), script);
    const compiled = originsOf(last, imagePath, repo.exists).find((o) => {
      const builder = stages.find((s) => s.name === o.from);
      return builder !== undefined && builds(builder) && o.source.endsWith('dist/src/cli/main.js');
    });
    if (!imagePath.endsWith('/dist/src/cli/main.js') || !compiled) {
      report(`ENTRYPOINT runs ${imagePath}, which is not dist/src/cli/main.js compiled by an earlier stage`);
      return;
    }
    const packageRoot = imagePath.slice(0, -'dist/src/cli/main.js'.length);
    const pkg = originsOf(last, path.posix.join(packageRoot, 'package.json'), repo.exists).find((o) => !o.from);
    if (pkg?.source !== 'package.json' || repo.packageJson.type !== 'module') {
      report(`${packageRoot}package.json is not the repository's package.json ("type": "module"): Node cannot load the compiled ES modules`);
    }
  });
}

/** Every path COPY/ADD takes from the build context exists in the repository. */
export function checkCopySources(stages: readonly Stage[], repo: Repository): string[] {
  return problems((report) => {
    for (const stage of stages) {
      for (const c of copiesOf(stage)) {
        if (c.from) {
          if (!stages.some((s) => s.name === c.from)) report(`line ${c.line}: COPY --from=${c.from} names no stage of this Dockerfile`);
          continue;
        }
        for (const src of c.sources) if (!repo.exists(src)) report(`line ${c.line}: COPY ${src}: not in the repository`);
      }
    }
  });
}

/** The files and packages meshid loads at run time are in the final image. */
export function checkRuntimeContents(stages: readonly Stage[], repo: Repository): string[] {
  return problems((report) => {
    const last = finalStage(stages);
    const ep = execForm(last.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)?.rest ?? '') ?? [];
    const script = ep.find((w) => w.endsWith('dist/src/cli/main.js'));
    if (!script) {
      report('cannot tell the package root without an ENTRYPOINT on dist/src/cli/main.js');
      return;
    }
    const root = path.posix.resolve(finalWorkdir(last), script).slice(0, -'dist/src/cli/main.js'.length);
    for (const file of repo.runtimeFiles) {
      if (originsOf(last, path.posix.join(root, file), repo.exists).length === 0) report(`${file} (read at run time) is not copied into the final image`);
    }
    const deps = repo.packageJson.dependencies ?? {};
    for (const p of repo.runtimePackages) {
      if (!(p in deps)) report(`src loads ${p}, which is ${p in (repo.packageJson.devDependencies ?? {}) ? 'a devDependency' : 'not a dependency'}: missing after npm ci --omit=dev`);
    }
  });
}

/** The stage that compiles sees every directory tsconfig.json includes: tsc fails on an import it cannot resolve. */
export function checkBuildInputs(stages: readonly Stage[], repo: Repository): string[] {
  return problems((report) => {
    const builders = stages.filter(builds);
    if (builders.length === 0) report('no stage compiles the TypeScript (tsc or npm run build)');
    for (const stage of builders) {
      const workdir = finalWorkdir(stage);
      for (const root of ['package.json', 'package-lock.json', 'tsconfig.json', ...repo.tsconfigRoots]) {
        if (originsOf(stage, path.posix.join(workdir, root), repo.exists).length === 0) {
          report(`stage ${stage.name ?? '(unnamed)'} compiles without ${root}, which tsconfig.json and npm ci need`);
        }
      }
    }
  });
}

/** Packages only the build uses, which the image must not carry: why. */
export const BUILD_ONLY_PACKAGES: Readonly<Record<string, string>> = {
  '@grpc/grpc-js-xds': 'its Envoy .proto files are compiled into dist/proto at build time; at run time it would bring about 30 packages',
};

/** The production dependency tree, which is the image's node_modules (checkProductionDependencies), holds no build-only package. */
export function checkImageDependencies(_stages: readonly Stage[], repo: Repository): string[] {
  return problems((report) => {
    for (const [name, why] of Object.entries(BUILD_ONLY_PACKAGES)) {
      if (repo.productionPackages.includes(name)) report(`the image's node_modules holds ${name} (npm ls --omit=dev lists it): ${why}`);
    }
  });
}

export const ALL_DOCKERFILE_CHECKS = {
  checkMultiStage: (s: readonly Stage[], _r: Repository) => checkMultiStage(s),
  checkProductionDependencies: (s: readonly Stage[], _r: Repository) => checkProductionDependencies(s),
  checkUser: (s: readonly Stage[], _r: Repository) => checkUser(s),
  checkEntrypoint,
  checkCopySources,
  checkRuntimeContents,
  checkBuildInputs,
  checkImageDependencies,
};
