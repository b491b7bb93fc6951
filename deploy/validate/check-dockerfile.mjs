// Lints deploy/Dockerfile with dockerfile-utils (the validator of the Docker language server):
// unknown instructions or flags, missing arguments, malformed JSON forms, and so on. Every
// diagnostic, error or warning, fails the check.
// Usage: node check-dockerfile.mjs DOCKERFILE...
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const { validate } = createRequire(import.meta.url)('dockerfile-utils');
let failed = 0;
for (const file of process.argv.slice(2)) {
  const diagnostics = validate(readFileSync(file, 'utf8'));
  if (diagnostics.length === 0) console.log(`ok   ${file}: dockerfile-utils finds no error or warning`);
  else {
    failed++;
    console.log(`FAIL ${file}: dockerfile-utils`);
    for (const d of diagnostics) console.log(`       line ${d.range.start.line + 1}: ${d.message}`);
  }
}
process.exit(failed ? 1 : 0);
