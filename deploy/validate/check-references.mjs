// Cross-file references that no single tool checks: every host:port one component of the stack
// sends to or scrapes is a service (compose) or a Service port (Kubernetes) that listens there.
// Usage: node check-references.mjs COMPOSE_CONFIG.yaml K8S_BASE_RENDERED.yaml
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';

const root = new URL('../../', import.meta.url).pathname;
const read = f => parse(readFileSync(f.startsWith('/') ? f : root + f, 'utf8'));
const compose = read(process.argv[2]);
const k8s = parseAllDocuments(readFileSync(process.argv[3], 'utf8')).map(d => d.toJS()).filter(Boolean);
const prometheus = read('deploy/prometheus/prometheus.yml');
const collector = read('deploy/otel-collector/config.yaml');
const k8sCollector = read('k8s/base/otel-collector-config.yaml');
const datasources = read('deploy/grafana/provisioning/datasources/datasources.yaml');
const dashboards = read('deploy/grafana/provisioning/dashboards/dashboards.yaml');
let passed = 0, failed = 0;
const check = (name, problems) => {
  problems = problems.filter(Boolean);
  if (problems.length === 0) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}`); problems.forEach(p => console.log(`       ${p}`)); }
};
const port = endpoint => Number(String(endpoint).split(':').pop());
const hostPort = url => { const u = new URL(url.includes('://') ? url : `tcp://${url}`); return [u.hostname, Number(u.port)]; };
const svc = compose.services;

// What listens where in compose (service -> ports), from the images' known ports and our configs.
const listens = {
  redis: [6379],
  silo: [11111, 30000, 9464],
  'otel-collector': [port(collector.receivers.otlp.protocols.grpc.endpoint), port(collector.receivers.otlp.protocols.http.endpoint),
    port(collector.exporters.prometheus.endpoint), collector.service?.telemetry?.metrics?.readers?.[0]?.pull?.exporter?.prometheus?.port, 13133],
  jaeger: [4317, 4318, 16686],
  prometheus: [9090],
  grafana: [3000],
};
const reach = (from, url) => {
  const [h, p] = hostPort(url);
  if (from === 'prometheus' && h === 'localhost') return listens.prometheus.includes(p) ? null : `${from} -> ${url}: nothing listens there`;
  if (!svc[h]) return `${from} -> ${url}: no service ${h}`;
  return (listens[h] || []).includes(p) ? null : `${from} -> ${url}: ${h} does not listen on ${p}`;
};
check('compose: Prometheus scrapes targets that exist (collector exporter and telemetry ports)',
  prometheus.scrape_configs.flatMap(j => (j.static_configs || []).flatMap(s => s.targets.map(t => reach('prometheus', t)))));
check('compose: silos and trainer export OTLP to the collector\'s OTLP receiver',
  ['silo', 'trainer'].map(s => reach(s, svc[s].environment.OTEL_EXPORTER_OTLP_ENDPOINT)));
check('compose: the collector sends traces to Jaeger\'s OTLP port',
  Object.entries(collector.exporters).filter(([k]) => k.startsWith('otlp')).map(([k, e]) => reach('otel-collector', e.endpoint)));
check('compose: Grafana data sources point at services (uids prometheus, jaeger)',
  [...datasources.datasources.map(d => reach('grafana', d.url)),
   ['prometheus', 'jaeger'].every(u => datasources.datasources.some(d => d.uid === u)) ? null : 'uids prometheus and jaeger not both provisioned']);
const dashMount = (svc.grafana.volumes || []).map(v => typeof v === 'string' ? v.split(':') : [v.source, v.target])
  .find(([src]) => String(src).endsWith('deploy/grafana/dashboards'));
check('compose: the dashboards provider reads the folder deploy/grafana/dashboards is mounted on',
  [dashMount && dashboards.providers[0].options.path === dashMount[1] ? null : `provider path ${dashboards.providers[0].options.path}, mount ${dashMount?.[1]}`]);
check('compose: silos and trainer reach Redis at CLUSTERCONV_REDIS',
  ['silo', 'trainer'].map(s => reach(s, svc[s].environment.CLUSTERCONV_REDIS)));
const hcPort = svc.silo.healthcheck.test.at(-1);
const argPort = flag => svc.silo.command[svc.silo.command.indexOf(flag) + 1];
check('compose: the silo health check asks the metrics port the silo serves',
  [String(hcPort) === String(argPort('--metrics-port')) ? null : `health check on ${hcPort}, --metrics-port ${argPort('--metrics-port')}`]);

// Kubernetes: Services and their ports, container ports the probes and Services name.
const services = Object.fromEntries(k8s.filter(o => o.kind === 'Service').map(o => [o.metadata.name, o]));
const settings = k8s.find(o => o.kind === 'ConfigMap' && o.metadata.name.startsWith('clusterconv-settings')).data;
const k8sReach = (what, url) => {
  const [h, p] = hostPort(url);
  const s = services[h];
  if (!s) return `${what} -> ${url}: no Service ${h}`;
  return s.spec.ports.some(x => x.port === p) ? null : `${what} -> ${url}: Service ${h} has no port ${p}`;
};
check('Kubernetes: CLUSTERCONV_REDIS and OTEL_EXPORTER_OTLP_ENDPOINT name Services and ports',
  [k8sReach('CLUSTERCONV_REDIS', settings.CLUSTERCONV_REDIS), k8sReach('OTEL_EXPORTER_OTLP_ENDPOINT', settings.OTEL_EXPORTER_OTLP_ENDPOINT)]);
const named = [];
for (const o of k8s.filter(o => ['Deployment', 'StatefulSet'].includes(o.kind))) {
  const pod = o.spec.template;
  const ports = pod.spec.containers.flatMap(c => c.ports || []);
  for (const c of pod.spec.containers) {
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const p = c[probe]?.httpGet?.port;
      if (p !== undefined && !ports.some(x => x.name === p || x.containerPort === p)) named.push(`${o.metadata.name} ${probe}: no port ${p}`);
    }
  }
  for (const s of Object.values(services)) {
    const selects = Object.entries(s.spec.selector || {}).every(([k, v]) => pod.metadata.labels?.[k] === v);
    if (!selects) continue;
    for (const sp of s.spec.ports) {
      if (!ports.some(x => x.name === sp.targetPort || x.containerPort === sp.targetPort)) named.push(`Service ${s.metadata.name} port ${sp.name}: ${o.metadata.name} has no port ${sp.targetPort}`);
    }
  }
  const ann = pod.metadata.annotations || {};
  if (ann['prometheus.io/port'] && !ports.some(x => String(x.containerPort) === ann['prometheus.io/port'])) named.push(`${o.metadata.name}: prometheus.io/port ${ann['prometheus.io/port']} is not a container port`);
}
for (const s of Object.values(services)) {
  if (!k8s.some(o => ['Deployment', 'StatefulSet'].includes(o.kind) && Object.entries(s.spec.selector || {}).every(([k, v]) => o.spec.template.metadata.labels?.[k] === v))) named.push(`Service ${s.metadata.name} selects no pods`);
}
for (const np of k8s.filter(o => o.kind === 'NetworkPolicy')) {
  const targets = k8s.filter(o => ['Deployment', 'StatefulSet'].includes(o.kind) && Object.entries(np.spec.podSelector.matchLabels || {}).every(([k, v]) => o.spec.template.metadata.labels?.[k] === v));
  if (!targets.length) named.push(`NetworkPolicy ${np.metadata.name} selects no pods`);
  for (const t of targets) {
    const ports = t.spec.template.spec.containers.flatMap(c => c.ports || []);
    for (const r of np.spec.ingress || []) for (const p of r.ports || []) {
      if (!ports.some(x => x.name === p.port || x.containerPort === p.port)) named.push(`NetworkPolicy ${np.metadata.name}: ${t.metadata.name} has no port ${p.port}`);
    }
  }
}
const trainer = k8s.find(o => o.kind === 'Job');
const clientLabel = trainer.spec.template.metadata.labels['clusterconv.io/client'];
if (clientLabel !== 'true') named.push('the trainer Job is not labelled clusterconv.io/client: "true"');
const collectorPorts = [k8sCollector.receivers.otlp.protocols.grpc.endpoint, k8sCollector.exporters.prometheus.endpoint].map(port);
const collectorDeploy = k8s.find(o => o.kind === 'Deployment' && o.metadata.name === 'otel-collector');
for (const p of collectorPorts) if (!collectorDeploy.spec.template.spec.containers[0].ports.some(x => x.containerPort === p)) named.push(`otel-collector: config listens on ${p}, no container port`);
check('Kubernetes: probes, Services, annotations and NetworkPolicies name ports the pods have; Services select pods', named);

process.exit(failed ? 1 : 0);
