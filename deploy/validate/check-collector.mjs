// Checks OpenTelemetry Collector configurations without running a collector: every component a
// pipeline (or service.extensions) names is defined in its section, every defined component is
// used, and every component type is one the otelcol-contrib distribution pinned in
// docker-compose.yml and k8s/base/otel-collector.yaml ships.
// Usage: node check-collector.mjs CONFIG.yaml...
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';

// Component types of otel/opentelemetry-collector-contrib 0.136.0 that a configuration of this
// project may use (a subset of the distribution's manifest; add a type here only after checking
// the manifest of the pinned version). The `jaeger` and `logging` exporters are gone from it.
const DISTRIBUTION = 'otel/opentelemetry-collector-contrib:0.136.0';
const KNOWN = {
  receivers: ['otlp', 'prometheus', 'hostmetrics', 'jaeger', 'zipkin', 'filelog', 'k8s_cluster', 'kubeletstats', 'nop'],
  processors: ['batch', 'memory_limiter', 'resource', 'resourcedetection', 'attributes', 'filter', 'transform',
    'k8sattributes', 'metricstransform', 'cumulativetodelta', 'deltatocumulative', 'probabilistic_sampler', 'tail_sampling', 'groupbyattrs'],
  exporters: ['debug', 'otlp', 'otlphttp', 'prometheus', 'prometheusremotewrite', 'file', 'zipkin', 'nop', 'loadbalancing'],
  extensions: ['health_check', 'pprof', 'zpages', 'basicauth', 'bearertokenauth', 'headers_setter', 'file_storage', 'oauth2client'],
  connectors: ['spanmetrics', 'servicegraph', 'forward', 'count', 'routing'],
};
const SECTIONS = Object.keys(KNOWN);
const typeOf = id => id.split('/')[0];
const PIPELINE_TYPES = ['traces', 'metrics', 'logs', 'profiles'];

let passed = 0, failed = 0;
for (const file of process.argv.slice(2)) {
  const problems = [];
  const doc = parseDocument(readFileSync(file, 'utf8'), { uniqueKeys: true });
  for (const e of [...doc.errors, ...doc.warnings]) problems.push(e.message);
  const cfg = doc.toJS() || {};
  for (const key of Object.keys(cfg)) if (![...SECTIONS, 'service'].includes(key)) problems.push(`unknown top-level section '${key}'`);
  for (const section of SECTIONS) {
    for (const idRaw of Object.keys(cfg[section] || {})) {
      if (!/^[a-z0-9_]+(\/[^/\s]+)?$/.test(idRaw)) problems.push(`${section}: malformed component id '${idRaw}'`);
      if (!KNOWN[section].includes(typeOf(idRaw))) problems.push(`${section}: '${typeOf(idRaw)}' is not a ${section.slice(0, -1)} of ${DISTRIBUTION}`);
    }
  }
  const service = cfg.service || {};
  const used = Object.fromEntries(SECTIONS.map(s => [s, new Set()]));
  for (const ext of service.extensions || []) {
    used.extensions.add(ext);
    if (!(ext in (cfg.extensions || {}))) problems.push(`service.extensions: '${ext}' is not defined under extensions`);
  }
  const pipelines = service.pipelines || {};
  if (Object.keys(pipelines).length === 0) problems.push('service.pipelines is empty');
  const connectors = cfg.connectors || {};
  for (const [name, p] of Object.entries(pipelines)) {
    if (!PIPELINE_TYPES.includes(typeOf(name))) problems.push(`pipeline '${name}': unknown signal type`);
    for (const key of Object.keys(p || {})) if (!['receivers', 'processors', 'exporters'].includes(key)) problems.push(`pipeline '${name}': unknown key '${key}'`);
    if (!(p?.receivers || []).length) problems.push(`pipeline '${name}': no receivers`);
    if (!(p?.exporters || []).length) problems.push(`pipeline '${name}': no exporters`);
    for (const section of ['receivers', 'processors', 'exporters']) {
      for (const c of p?.[section] || []) {
        if (c in (cfg[section] || {})) used[section].add(c);
        else if (section !== 'processors' && c in connectors) used.connectors.add(c);
        else problems.push(`pipeline '${name}': ${section.slice(0, -1)} '${c}' is not defined under ${section}`);
      }
    }
  }
  for (const section of SECTIONS) {
    for (const c of Object.keys(cfg[section] || {})) if (!used[section].has(c)) problems.push(`${section}: '${c}' is defined but used by no pipeline`);
  }
  if (problems.length) { failed++; console.log(`FAIL collector config ${file}`); problems.forEach(p => console.log(`       ${p}`)); }
  else { passed++; console.log(`ok   collector config ${file}: every component defined, used and known to ${DISTRIBUTION}`); }
}
process.exit(failed ? 1 : 0);
