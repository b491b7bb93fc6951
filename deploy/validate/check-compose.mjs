// Checks the docker compose stack as `docker-compose config` resolved it (file given as argv[2]),
// against the rendered Kubernetes base (argv[3]): ports published on 127.0.0.1 only, the services
// and their health checks and start order, Grafana's anonymous viewer, image pins shared with the
// collector check, and the silo started with the same arguments in compose and Kubernetes.
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';

const compose = parse(readFileSync(process.argv[2], 'utf8'));
const k8s = parseAllDocuments(readFileSync(process.argv[3], 'utf8')).map(d => d.toJS()).filter(Boolean);
let passed = 0, failed = 0;
const check = (name, problems) => {
  if (problems.length === 0) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}`); problems.forEach(p => console.log(`       ${p}`)); }
};
const svc = compose.services || {};

check('compose: the stack has redis, silo, trainer, otel-collector, prometheus, grafana, jaeger',
  ['redis', 'silo', 'trainer', 'otel-collector', 'prometheus', 'grafana', 'jaeger'].filter(s => !svc[s]).map(s => `no service ${s}`));

const ports = [];
for (const [name, s] of Object.entries(svc)) {
  for (const p of s.ports || []) {
    const hostIp = typeof p === 'string' ? (p.split(':').length === 3 ? p.split(':')[0] : '') : p.host_ip;
    if (hostIp !== '127.0.0.1') ports.push(`${name}: port ${JSON.stringify(p)} is not bound to 127.0.0.1`);
  }
  if (s.network_mode === 'host') ports.push(`${name}: network_mode host`);
}
check('compose: every published port bound to 127.0.0.1', ports);

const order = [];
const cond = (from, to, want) => { if (svc[from]?.depends_on?.[to]?.condition !== want) order.push(`${from} does not wait for ${to} (${want})`); };
cond('silo', 'redis', 'service_healthy');
cond('trainer', 'silo', 'service_healthy');
cond('grafana', 'prometheus', 'service_healthy');
for (const s of ['redis', 'silo', 'prometheus', 'grafana']) {
  const t = svc[s]?.healthcheck?.test;
  if (!t || t[0] === 'NONE' || svc[s].healthcheck.disable) order.push(`${s}: no health check`);
}
if (svc.silo?.deploy?.replicas !== 3) order.push('silo: not 3 replicas');
if (svc.trainer?.restart && svc.trainer.restart !== 'no') order.push('trainer: restarts (a one-shot job must not)');
const grace = String(svc.silo?.stop_grace_period || '');
if (!/^(\d+)s$/.test(grace) || Number(grace.slice(0, -1)) <= 20) order.push(`silo: stop_grace_period ${grace} not above the 20 s shutdown timeout`);
check('compose: health checks, depends_on conditions, 3 silos, one-shot trainer, grace period', order);

const env = svc.grafana?.environment || {};
check('compose: Grafana anonymous read-only viewer, provisioning mounted',
  [env.GF_AUTH_ANONYMOUS_ENABLED === 'true' ? null : 'anonymous access not enabled',
   env.GF_AUTH_ANONYMOUS_ORG_ROLE === 'Viewer' ? null : 'anonymous role is not Viewer',
   (svc.grafana?.volumes || []).some(v => String(typeof v === 'string' ? v : v.target).includes('/etc/grafana/provisioning')) ? null : 'provisioning not mounted',
  ].filter(Boolean));

const secrets = [];
for (const [name, s] of Object.entries(svc)) {
  for (const [k, v] of Object.entries(s.environment || {})) {
    if (/PASSWORD|SECRET|TOKEN/i.test(k) && v && v !== 'change-me') secrets.push(`${name}: ${k} has a value other than the .example placeholder`);
  }
}
check('compose: secrets come only from the (uncommitted) env files', secrets);

const images = [...Object.entries(svc).map(([n, s]) => [`compose ${n}`, s.image]),
  ...k8s.flatMap(o => (o.spec?.template?.spec ? [...(o.spec.template.spec.initContainers || []), ...o.spec.template.spec.containers] : [])
    .map(c => [`Kubernetes ${o.kind}/${o.metadata.name} ${c.name}`, c.image]))];
check('every image pinned to a tag other than latest (compose and Kubernetes)',
  images.filter(([, i]) => !/:[^/:]+$/.test(i || '') || /:latest$/.test(i)).map(([w, i]) => `${w}: ${i}`));

const collectorImage = 'otel/opentelemetry-collector-contrib:0.136.0';
const k8sCollector = k8s.find(o => o.kind === 'Deployment' && o.metadata.name === 'otel-collector');
check(`compose and Kubernetes run the collector distribution the config check knows (${collectorImage})`,
  [svc['otel-collector']?.image === collectorImage ? null : `compose runs ${svc['otel-collector']?.image}`,
   k8sCollector?.spec.template.spec.containers[0].image === collectorImage ? null : `Kubernetes runs ${k8sCollector?.spec.template.spec.containers[0].image}`,
  ].filter(Boolean));

// `docker-compose config` keeps $$ escapes; the entry point then expands $(NAME) like Kubernetes.
const composeArgs = (svc.silo?.command || []).map(a => String(a).replaceAll('$$', '$'));
const siloDeploy = k8s.find(o => o.kind === 'Deployment' && o.metadata.name === 'silo');
const k8sArgs = siloDeploy?.spec.template.spec.containers[0].args || [];
check('silo: the same arguments in docker-compose.yml and the Kubernetes Deployment',
  JSON.stringify(composeArgs) === JSON.stringify(k8sArgs) ? [] : [`compose: ${composeArgs.join(' ')}`, `k8s:     ${k8sArgs.join(' ')}`]);
const settings = k8s.find(o => o.kind === 'ConfigMap' && o.metadata.name.startsWith('clusterconv-settings'));
check('silo: the same CLUSTERCONV_REDIS in compose and Kubernetes',
  svc.silo?.environment?.CLUSTERCONV_REDIS === settings?.data?.CLUSTERCONV_REDIS ? [] : [`${svc.silo?.environment?.CLUSTERCONV_REDIS} vs ${settings?.data?.CLUSTERCONV_REDIS}`]);

process.exit(failed ? 1 : 0);
