// Strict `tsc --noEmit` over generated .ts files, resolving types from this folder's node_modules. Shared by the
// dashboard and Kubernetes checkers. Returns the compiler's "error TSnnnn" lines (empty when everything type-checks).
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function typeCheck(work, files) {
  writeFileSync(join(work, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler',
      skipLibCheck: true, types: [], typeRoots: [join(here, 'node_modules')], baseUrl: here,
      paths: { '*': [join(here, 'node_modules', '*')] } },
    files,
  }, null, 2));
  let out = '';
  try {
    execFileSync(process.execPath, [join(here, 'node_modules/typescript/bin/tsc'), '-p', join(work, 'tsconfig.json'), '--pretty', 'false'], { encoding: 'utf8' });
  } catch (e) { out = (e.stdout || '') + (e.stderr || ''); }
  return out.split('\n').filter(l => /error TS\d+/.test(l));
}
