/**
 * The Dockerfile against the repository and the code (no Docker engine here: the image is not
 * built). Every check passes on the real Dockerfile and fails on a copy broken on purpose.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ALL_DOCKERFILE_CHECKS, copiesOf, type Dockerfile, originsOf, parseDockerfile, type Repository } from './dockerfile-checks.js';

const TEXT = fs.readFileSync('Dockerfile', 'utf8');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));
}

/** Package-relative paths given to packagePath(...) in src; every argument must be a string literal. */
function runtimeFiles(): string[] {
  const out = new Set<string>();
  for (const file of sourceFiles('src')) {
    if (file === path.join('src', 'lib', 'package-path.ts')) continue;
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/\bpackagePath\(([^)]*)\)/g)) {
      const args = m[1]!.split(',').map((a) => a.trim());
      if (!args.every((a) => /^'[^']*'$/.test(a))) throw new Error(`${file}: packagePath(${m[1]}) has arguments this test cannot read`);
      out.add(args.map((a) => a.slice(1, -1)).join('/'));
    }
  }
  return [...out].sort();
}

/** Packages src loads at run time: value imports, dynamic imports, require and require.resolve, pino transport targets. */
function runtimePackages(): string[] {
  const out = new Set<string>();
  const patterns = [/^import\s+(?!type\b)[^;]*?\sfrom\s+'([^']+)'/gm, /\bimport\('([^']+)'\)/g, /\brequire(?:\.resolve)?\('([^']+)'\)/g, /\btarget:\s*'([^']+)'/g];
  for (const file of sourceFiles('src')) {
    const text = fs.readFileSync(file, 'utf8');
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        const spec = m[1]!;
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        out.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
  }
  return [...out].sort();
}

/** The first path segment of each tsconfig.json "include" pattern. */
function tsconfigRoots(): string[] {
  const include = (JSON.parse(fs.readFileSync('tsconfig.json', 'utf8')) as { include: string[] }).include;
  return [...new Set(include.map((p) => p.split('/')[0]!))];
}

/** Package names of the production dependency tree, as npm lists it. */
function productionPackages(): string[] {
  const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { encoding: 'utf8' });
  if (ls.status !== 0) throw new Error(`npm ls --omit=dev failed (${ls.status}): ${ls.stderr}`);
  const names = ls.stdout.split('\n').filter((l) => l.includes('node_modules/')).map((l) => l.slice(l.lastIndexOf('node_modules/') + 'node_modules/'.length));
  return [...new Set(names)].sort();
}

const REPO: Repository = {
  exists: (p) => fs.existsSync(path.normalize(p)),
  packageJson: JSON.parse(fs.readFileSync('package.json', 'utf8')) as Repository['packageJson'],
  runtimeFiles: runtimeFiles(),
  runtimePackages: runtimePackages(),
  tsconfigRoots: tsconfigRoots(),
  productionPackages: productionPackages(),
};

const real: Dockerfile = parseDockerfile(TEXT);

test('the Dockerfile parses into its stages, and the repository scan finds what meshid loads', (t) => {
  t.deepEqual(
    real.map((s) => s.name ?? '(final)'),
    ['build', 'deps', '(final)'],
  );
  t.true(REPO.runtimeFiles.includes('dist/proto/meshid.json'), REPO.runtimeFiles.join(', '));
  for (const p of ['@grpc/grpc-js', 'protobufjs', 'pino', 'pino-pretty', 'yaml']) t.true(REPO.runtimePackages.includes(p), p);
  t.false(REPO.runtimePackages.includes('ava'));
  t.false(REPO.runtimePackages.includes('@grpc/grpc-js-xds'));
  for (const p of ['@grpc/grpc-js', 'protobufjs', 'pino']) t.true(REPO.productionPackages.includes(p), p);
  t.false(REPO.productionPackages.includes('ava'));
});

test('COPY destinations and origins follow Docker: directory contents into dest, files into a dest/ directory', (t) => {
  const final = real.at(-1)!;
  t.deepEqual(
    originsOf(final, '/app/dist/src/cli/main.js', REPO.exists).map((o) => `${o.from ?? 'context'}:${o.source}`),
    ['build:/src/dist/src/cli/main.js'],
  );
  t.true(originsOf(final, '/app/package.json', REPO.exists).some((o) => !o.from && o.source === 'package.json'));
  t.deepEqual(originsOf(final, '/usr/lib/x', REPO.exists), []);
  t.true(copiesOf(real[0]!).some((c) => c.sources.includes('package.json') && c.dest === '/src' && c.destIsDir));
});

for (const [name, check] of Object.entries(ALL_DOCKERFILE_CHECKS)) {
  test(`${name} passes on the Dockerfile`, (t) => {
    t.deepEqual(check(real, REPO), []);
  });
}

// ---- mutations ----

/** The real Dockerfile with one piece of text replaced (which must be there). */
function edited(from: string | RegExp, to: string): Dockerfile {
  const text = TEXT.replace(from, to);
  if (text === TEXT) throw new Error(`the Dockerfile no longer contains ${from}`);
  return parseDockerfile(text);
}

const SINGLE_STAGE = parseDockerfile(`FROM node:20-bookworm-slim
WORKDIR /app
COPY . .
RUN npm ci && npx tsc -p tsconfig.json
USER 1000
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
`);

interface Mutation {
  readonly check: keyof typeof ALL_DOCKERFILE_CHECKS;
  readonly dockerfile: () => Dockerfile;
  readonly repo?: Partial<Repository>;
  readonly expect: RegExp;
}

const MUTATIONS: Record<string, Mutation> = {
  'one stage that builds and runs': { check: 'checkMultiStage', dockerfile: () => SINGLE_STAGE, expect: /1 stage\(s\)/ },
  'a final stage that compiles': { check: 'checkMultiStage', dockerfile: () => SINGLE_STAGE, expect: /the final stage compiles TypeScript/ },
  'dev dependencies installed for the runtime': {
    check: 'checkProductionDependencies',
    dockerfile: () => edited('npm ci --omit=dev --ignore-scripts', 'npm ci --ignore-scripts'),
    expect: /node_modules comes from stage deps, which installs with \["npm ci --ignore-scripts && npm cache clean --force"\]/,
  },
  "node_modules copied from the build stage": {
    check: 'checkProductionDependencies',
    dockerfile: () => edited('COPY --from=deps /app/node_modules', 'COPY --from=build /src/node_modules'),
    expect: /node_modules comes from stage build/,
  },
  'npm install in the final stage': {
    check: 'checkProductionDependencies',
    dockerfile: () => edited('COPY --from=deps /app/node_modules ./node_modules', 'COPY package-lock.json ./\nRUN npm install'),
    expect: /the final stage runs "npm install", which is not "npm ci --omit=dev"/,
  },
  'no dependencies at all': {
    check: 'checkProductionDependencies',
    dockerfile: () => edited('COPY --from=deps /app/node_modules ./node_modules\n', ''),
    expect: /the final stage gets no node_modules/,
  },
  'no USER': { check: 'checkUser', dockerfile: () => edited(/^USER .*$/m, ''), expect: /no USER: the image runs as root/ },
  'USER root': { check: 'checkUser', dockerfile: () => edited(/^USER .*$/m, 'USER 0:0'), expect: /USER 0:0 is root/ },
  'USER by name': { check: 'checkUser', dockerfile: () => edited(/^USER .*$/m, 'USER node'), expect: /USER node is a name/ },
  'a shell-form ENTRYPOINT': {
    check: 'checkEntrypoint',
    dockerfile: () => edited(/^ENTRYPOINT .*$/m, 'ENTRYPOINT node /app/dist/src/cli/main.js'),
    expect: /shell form: signals go to \/bin\/sh/,
  },
  'an ENTRYPOINT on another script': {
    check: 'checkEntrypoint',
    dockerfile: () => edited(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["node", "/app/dist/cli/main.js"]'),
    expect: /ENTRYPOINT runs \/app\/dist\/cli\/main\.js, which is not dist\/src\/cli\/main\.js compiled by an earlier stage/,
  },
  'compiled code not copied into the final stage': {
    check: 'checkEntrypoint',
    dockerfile: () => edited('COPY --from=build /src/dist/src ./dist/src\n', ''),
    expect: /not dist\/src\/cli\/main\.js compiled by an earlier stage/,
  },
  'no package.json beside dist': {
    check: 'checkEntrypoint',
    dockerfile: () => edited(/^COPY package\.json \.\/\n(?=COPY deploy)/m, ''),
    expect: /\/app\/package\.json is not the repository's package\.json/,
  },
  'a COPY of a path that does not exist': {
    check: 'checkCopySources',
    dockerfile: () => edited('COPY bench ./bench', 'COPY benchmarks ./benchmarks'),
    expect: /COPY benchmarks: not in the repository/,
  },
  'a COPY --from an unknown stage': {
    check: 'checkCopySources',
    dockerfile: () => edited('--from=build', '--from=builder'),
    expect: /COPY --from=builder names no stage/,
  },
  'the proto descriptor left out of the image': {
    check: 'checkRuntimeContents',
    dockerfile: () => edited('COPY --from=build /src/dist/proto ./dist/proto\n', ''),
    expect: /dist\/proto\/meshid\.json \(read at run time\) is not copied into the final image/,
  },
  'a build stage without a directory tsc compiles': {
    check: 'checkBuildInputs',
    dockerfile: () => edited('COPY test ./test\n', ''),
    expect: /stage build compiles without test, which tsconfig.json and npm ci need/,
  },
  'a new tsconfig root the build stage does not copy': {
    check: 'checkBuildInputs',
    dockerfile: () => real,
    repo: { tsconfigRoots: [...REPO.tsconfigRoots, 'tools'] },
    expect: /stage build compiles without tools/,
  },
  'no stage that compiles': {
    check: 'checkBuildInputs',
    dockerfile: () => edited('RUN npm run build', 'RUN true'),
    expect: /no stage compiles the TypeScript/,
  },
  'a runtime import of a devDependency': {
    check: 'checkRuntimeContents',
    dockerfile: () => real,
    repo: { runtimePackages: [...REPO.runtimePackages, 'ava'] },
    expect: /src loads ava, which is a devDependency/,
  },
  '@grpc/grpc-js-xds back in the production dependencies': {
    check: 'checkImageDependencies',
    dockerfile: () => real,
    repo: { productionPackages: [...REPO.productionPackages, '@grpc/grpc-js-xds'] },
    expect: /the image's node_modules holds @grpc\/grpc-js-xds/,
  },
  'a runtime file that exists nowhere': {
    check: 'checkRuntimeContents',
    dockerfile: () => real,
    repo: { runtimeFiles: [...REPO.runtimeFiles, 'deploy/policies/99-missing.yaml'] },
    expect: /deploy\/policies\/99-missing\.yaml \(read at run time\) is not copied/,
  },
};

for (const [what, m] of Object.entries(MUTATIONS)) {
  test(`${m.check} fails on ${what}`, (t) => {
    const found = ALL_DOCKERFILE_CHECKS[m.check](m.dockerfile(), { ...REPO, ...m.repo });
    t.true(
      found.some((p) => m.expect.test(p)),
      `expected a problem matching ${m.expect}, got:\n  ${found.join('\n  ') || '(none)'}`,
    );
  });
}

test('every Dockerfile check has a mutation that makes it fail', (t) => {
  const covered = new Set(Object.values(MUTATIONS).map((m) => m.check));
  t.deepEqual(Object.keys(ALL_DOCKERFILE_CHECKS).filter((c) => !covered.has(c as keyof typeof ALL_DOCKERFILE_CHECKS)), []);
});
