// Validates rendered Kubernetes objects (the output of `kubectl kustomize DIR`, one file per
// kustomization) three ways:
//  1. schema: every object through kubernetes-models' JSON schema (types, required fields, formats);
//  2. unknown fields: every object written into a TypeScript file as a literal of its
//     kubernetes-types type (CRDs: the @kubernetes-models interface), compiled with tsc --noEmit;
//     excess-property checks reject any field the API does not define, at any depth. A self-test
//     object with a misspelled field must be rejected, or the check itself is broken;
//  3. policy: the deployment rules of issue 5 (non-root, read-only root, no token, probes, ...).
// Usage: node check-k8s.mjs NAME=RENDERED.yaml...   Prints one "ok"/"FAIL" line per check.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { typeCheck } from './typecheck.mjs';
import { parseAllDocuments } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const work = join(here, '.work');
mkdirSync(work, { recursive: true });
let passed = 0, failed = 0;
const result = (name, problems) => {
  if (problems.length === 0) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}`); for (const p of problems.slice(0, 30)) console.log(`       ${p}`); }
};

const sets = process.argv.slice(2).map(a => { const i = a.indexOf('='); return { name: a.slice(0, i), file: a.slice(i + 1) }; });

function load(file) {
  const objects = [], problems = [];
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    for (const e of [...doc.errors, ...doc.warnings]) problems.push(`${file}: ${e.message}`);
    const o = doc.toJS();
    if (o) objects.push(o);
  }
  return { objects, problems };
}
const id = o => `${o.kind}/${o.metadata?.name}`;

// --- 1. schema --------------------------------------------------------------------------------
async function modelFor(o) {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const module = group === '' ? `kubernetes-models/${version}`
    : group === 'monitoring.coreos.com' ? `@kubernetes-models/prometheus-operator/${group}/${version}`
    : `kubernetes-models/${group}/${version}`;
  const mod = await import(module);
  if (!mod[o.kind]) throw new Error(`no model for ${o.apiVersion} ${o.kind}`);
  return mod[o.kind];
}

// --- 2. TypeScript ----------------------------------------------------------------------------
const tsType = o => {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['core', o.apiVersion];
  if (group === 'monitoring.coreos.com') {
    return { from: `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`, name: `I${o.kind}` };
  }
  return { from: `kubernetes-types/${group.split('.')[0]}/${version}`, name: o.kind };
};
function tsFile(objects) {
  const imports = new Map(), lines = [];
  objects.forEach((o, i) => {
    const t = tsType(o);
    const alias = `${t.name}_${t.from.replace(/[^A-Za-z0-9]/g, '_')}`;
    imports.set(alias, t);
    lines.push(`// ${id(o)}\nexport const o${i}: ${alias} = ${JSON.stringify(o, null, 2)};`);
  });
  const head = [...imports].map(([alias, t]) => `import type { ${t.name} as ${alias} } from '${t.from}';`);
  return `${head.join('\n')}\n\n${lines.join('\n\n')}\n`;
}

const tsFiles = [];
const all = [];
for (const set of sets) {
  const { objects, problems } = load(set.file);
  result(`${set.name}: rendered YAML parses (${objects.length} objects)`, problems.concat(objects.length ? [] : ['no objects']));
  const schema = [];
  for (const o of objects) {
    try { (new (await modelFor(o))(o)).validate(); } catch (e) { schema.push(`${id(o)}: ${e.message}`); }
  }
  result(`${set.name}: every object valid against the Kubernetes API schema (kubernetes-models)`, schema);
  const file = join(work, `${set.name.replace(/[^A-Za-z0-9]/g, '_')}.ts`);
  writeFileSync(file, tsFile(objects));
  tsFiles.push({ set, file });
  all.push({ set, objects });
}
// Self-test: one misspelled field deep in a Deployment must be caught.
const selftest = join(work, 'selftest_unknown_field.ts');
writeFileSync(selftest, tsFile([{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' },
  spec: { selector: {}, template: { spec: { containers: [{ name: 'c', image: 'i', readinessProbes: {} }] } } } }]));
const tscErrors = typeCheck(work, [...tsFiles.map(t => t.file), selftest]);
for (const { set, file } of tsFiles) {
  result(`${set.name}: no unknown or mistyped field (kubernetes-types, tsc --noEmit)`, tscErrors.filter(l => l.includes(basename(file))));
}
result('type check rejects an unknown field (self-test)', tscErrors.some(l => l.includes(basename(selftest)) && l.includes('readinessProbes'))
  ? [] : ['a Deployment with containers[0].readinessProbes was accepted']);
const stray = tscErrors.filter(l => !tsFiles.some(t => l.includes(basename(t.file))) && !l.includes(basename(selftest)));
if (stray.length) result('type check setup', stray);

// --- 3. policy --------------------------------------------------------------------------------
for (const { set, objects } of all) {
  const p = [];
  const podSpecs = objects.flatMap(o => {
    const t = o.kind === 'Job' || o.kind === 'Deployment' || o.kind === 'StatefulSet' ? o.spec.template.spec : null;
    return t ? [{ o, spec: t }] : [];
  });
  for (const { o, spec } of podSpecs) {
    if (spec.automountServiceAccountToken !== false) p.push(`${id(o)}: automountServiceAccountToken is not false`);
    if (spec.securityContext?.runAsNonRoot !== true) p.push(`${id(o)}: pod securityContext.runAsNonRoot is not true`);
    for (const c of [...(spec.initContainers || []), ...spec.containers]) {
      const sc = c.securityContext || {};
      if (sc.readOnlyRootFilesystem !== true) p.push(`${id(o)} ${c.name}: readOnlyRootFilesystem is not true`);
      if (sc.allowPrivilegeEscalation !== false) p.push(`${id(o)} ${c.name}: allowPrivilegeEscalation is not false`);
      if (!c.resources?.requests?.memory) p.push(`${id(o)} ${c.name}: no memory request`);
      for (const m of c.volumeMounts || []) {
        if (!spec.volumes?.some(v => v.name === m.name) && !(o.spec.volumeClaimTemplates || []).some(v => v.metadata.name === m.name)) {
          p.push(`${id(o)} ${c.name}: volume ${m.name} is mounted but not defined`);
        }
      }
      // .NET writes its diagnostics socket and temporary files there.
      if (c.image.startsWith('clusterconv') && spec.containers.includes(c) && !(c.volumeMounts || []).some(m => m.mountPath === '/tmp')) {
        p.push(`${id(o)} ${c.name}: no writable /tmp for the .NET process`);
      }
    }
  }
  const silo = objects.find(o => o.kind === 'Deployment' && o.metadata.name === 'silo');
  if (!silo) p.push('no silo Deployment');
  else {
    const s = silo.spec, spec = s.template.spec, c = spec.containers[0];
    const env = Object.fromEntries((c.env || []).map(e => [e.name, e]));
    if (env.POD_NAME?.valueFrom?.fieldRef?.fieldPath !== 'metadata.name') p.push('silo: POD_NAME not from the downward API');
    if (env.POD_IP?.valueFrom?.fieldRef?.fieldPath !== 'status.podIP') p.push('silo: POD_IP not from the downward API');
    if (!env.CLUSTERCONV_REDIS_PASSWORD?.valueFrom?.secretKeyRef) p.push('silo: Redis password not from a Secret');
    const arg = f => c.args[c.args.indexOf(f) + 1];
    if (arg('--name') !== '$(POD_NAME)' || arg('--advertise') !== '$(POD_IP)') p.push('silo: --name/--advertise not the pod name/IP');
    for (const port of ['silo', 'gateway', 'metrics']) if (!c.ports.some(x => x.name === port)) p.push(`silo: no ${port} port`);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) if (!c[probe]) p.push(`silo: no ${probe}`);
    if (!c.resources?.requests?.cpu) p.push('silo: no CPU request');
    if (c.resources?.limits?.cpu !== undefined) p.push('silo: has a CPU limit');
    // The silo's host shutdown timeout is 20 s (clusterconv silo); the grace period must outlast it.
    if (!(spec.terminationGracePeriodSeconds > 20)) p.push('silo: terminationGracePeriodSeconds not above the 20 s shutdown timeout');
    if (s.strategy?.type !== 'RollingUpdate' || s.strategy.rollingUpdate?.maxUnavailable !== 0) p.push('silo: rolling update maxUnavailable is not 0');
    if (!(s.replicas >= 3)) p.push('silo: fewer than 3 replicas');
    const pdb = objects.find(o => o.kind === 'PodDisruptionBudget');
    if (!pdb || pdb.spec.selector.matchLabels['app.kubernetes.io/component'] !== 'silo') p.push('no PodDisruptionBudget for the silos');
  }
  const kinds = new Set(objects.map(o => o.kind));
  for (const k of ['Namespace', 'StatefulSet', 'Service', 'ConfigMap', 'Job', 'NetworkPolicy', 'PodDisruptionBudget']) if (!kinds.has(k)) p.push(`no ${k}`);
  const redis = objects.find(o => o.kind === 'StatefulSet' && o.metadata.name === 'redis');
  if (!redis?.spec.volumeClaimTemplates?.length) p.push('redis: no volume');
  const np = objects.filter(o => o.kind === 'NetworkPolicy');
  const npFor = comp => np.find(o => o.spec.podSelector?.matchLabels?.['app.kubernetes.io/component'] === comp
    || o.spec.podSelector?.matchLabels?.['app.kubernetes.io/name'] === comp);
  if (!np.some(o => Object.keys(o.spec.podSelector || {}).length === 0 && !o.spec.ingress)) p.push('no default-deny ingress NetworkPolicy');
  const redisNp = npFor('redis');
  const redisFrom = (redisNp?.spec.ingress || []).flatMap(r => r.from || [{ any: true }]);
  if (!redisNp || redisFrom.some(f => f.any || f.namespaceSelector || f.ipBlock)) p.push('redis: NetworkPolicy does not restrict who reaches Redis');
  const siloNp = npFor('silo');
  for (const r of siloNp?.spec.ingress || []) {
    const ports = (r.ports || []).map(x => x.port);
    if ((ports.length === 0 || ports.includes('silo') || ports.includes('gateway') || ports.includes(11111) || ports.includes(30000)) && !r.from) {
      p.push('silo: a NetworkPolicy rule opens the silo/gateway ports to everyone');
    }
  }
  if (!siloNp) p.push('silo: no NetworkPolicy');
  result(`${set.name}: deployment rules (non-root, read-only root, no token, probes, no CPU limit, PDB, NetworkPolicy)`, p);
}

process.exit(failed ? 1 : 0);
