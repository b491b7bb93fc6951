// Validates the Grafana dashboards (deploy/grafana/dashboards/*.json) offline:
//  1. types: each dashboard is written into a TypeScript file as a literal of @grafana/schema's
//     Dashboard type, with every panel narrowed to its plugin's published Options and FieldConfig
//     types (timeseries, stat, status-history, bargauge, ...), its Prometheus targets to the query
//     shape below, and compiled by tsc --noEmit in strict mode: excess-property checks reject any
//     unknown field at any depth, and a wrong type or enum value fails. String enums of the schema
//     are compared by their values (JSON has no enums). A self-test dashboard with a misspelled
//     field must be rejected, or the check itself is broken. schemaVersion must be the package's;
//  2. ids: panel ids unique within a dashboard (rows and their nested panels included), dashboard
//     uids present, well-formed and unique across the files; every panel with a title, a
//     description and a unit; a repeated row or panel repeats by a defined multi-value variable;
//  3. data sources: every data-source reference (panels, targets, variables, annotations, the
//     Explore links' panes) names a uid the provisioning files define, with the same type;
//  4. PromQL: every Prometheus expression (targets of panels and of nested row panels, query
//     variables' label_values/query_result/... arguments) parses with @prometheus-io/lezer-promql
//     after Grafana's variables are substituted, and with Prometheus' own parser (promtool check
//     rules of the Debian prometheus package, when present); every variable it uses is defined;
//  5. metric names: every metric an expression selects is in docs/TELEMETRY.md's table (histograms
//     as _bucket/_sum/_count), one of Orleans' instruments below (meter Microsoft.Orleans, Orleans
//     10.4.2), or `up`; label matchers on ClusterConv metrics use labels the table gives them.
// Usage: node check-dashboards.mjs [DASHBOARD_DIR [PROVISIONING_DIR [TELEMETRY_MD]]]
// Prints one "ok"/"FAIL" line per check; exits 1 when any failed.
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { typeCheck } from './typecheck.mjs';
import { parse as parseYaml } from 'yaml';
import { parser as promqlParser } from '@prometheus-io/lezer-promql';
import { defaultDashboard } from '@grafana/schema';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const dashDir = resolve(process.argv[2] || join(root, 'deploy/grafana/dashboards'));
const provDir = resolve(process.argv[3] || join(root, 'deploy/grafana/provisioning'));
const telemetryMd = resolve(process.argv[4] || join(root, 'docs/TELEMETRY.md'));
const work = join(here, '.work', 'dashboards');
mkdirSync(work, { recursive: true });

let failed = 0;
const result = (name, problems) => {
  if (problems.length === 0) console.log(`ok   ${name}`);
  else { failed++; console.log(`FAIL ${name}`); for (const p of problems.slice(0, 30)) console.log(`       ${p}`); }
};

// --- inputs -------------------------------------------------------------------------------------
const files = readdirSync(dashDir).filter(f => f.endsWith('.json')).sort();
const dashboards = [];
{
  const p = [];
  for (const f of files) {
    try { dashboards.push({ file: f, d: JSON.parse(readFileSync(join(dashDir, f), 'utf8')) }); } catch (e) { p.push(`${f}: ${e.message}`); }
  }
  if (files.length === 0) p.push(`no *.json in ${dashDir}`);
  result(`dashboards: ${files.length} JSON files in ${basename(dashDir)}/ parse`, p);
}

// Provisioned data sources: uid -> type.
const provisioned = new Map();
{
  const p = [];
  const dsDir = join(provDir, 'datasources');
  for (const f of existsSync(dsDir) ? readdirSync(dsDir).filter(f => /\.ya?ml$/.test(f)) : []) {
    const y = parseYaml(readFileSync(join(dsDir, f), 'utf8'));
    for (const ds of y?.datasources || []) {
      if (!ds.uid) p.push(`${f}: data source ${ds.name} has no uid`);
      else provisioned.set(ds.uid, ds.type);
    }
  }
  if (provisioned.size === 0) p.push(`no data source in ${dsDir}`);
  result(`provisioning: data sources ${[...provisioned].map(([u, t]) => `${u} (${t})`).join(', ')}`, p);
}

// Metric names of docs/TELEMETRY.md: | `instrument` | kind | unit | labels | `prometheus_name` |
const telemetry = new Map(); // series name -> labels allowed in matchers
{
  const p = [];
  for (const line of readFileSync(telemetryMd, 'utf8').split('\n')) {
    const cells = line.split('|').map(c => c.trim());
    if (cells.length < 7 || !/^`clusterconv\./.test(cells[1])) continue;
    const [, , kind, , labels, prom] = cells;
    const name = prom.replace(/`/g, '');
    const ls = labels.split(',').map(s => s.trim()).filter(Boolean);
    if (kind === 'histogram') {
      telemetry.set(`${name}_bucket`, [...ls, 'le']);
      telemetry.set(`${name}_sum`, ls);
      telemetry.set(`${name}_count`, ls);
    } else telemetry.set(name, ls);
  }
  if (telemetry.size < 10) p.push(`only ${telemetry.size} metrics read from ${telemetryMd}`);
  result(`docs/TELEMETRY.md: ${telemetry.size} series names read from the metrics table`, p);
}

// Orleans' own instruments (meter Microsoft.Orleans; names from Orleans' InstrumentNames, kinds and
// units from its *Instruments classes, as in the 10.4.2 assemblies and a 10.4.2 silo's /metrics), in Prometheus naming: "-" and
// "." become "_", the unit is appended (ms -> milliseconds, bytes -> bytes), counters get _total,
// histograms are _bucket/_sum/_count, up-down counters and gauges keep the name.
const orleansInstruments = [
  ['orleans-messaging-sent-messages-size', 'histogram', 'bytes'],
  ['orleans-messaging-received-messages-size', 'histogram', 'bytes'],
  ['orleans-messaging-sent-header-size', 'counter', 'bytes'],
  ['orleans-messaging-received-header-size', 'counter', 'bytes'],
  ['orleans-messaging-sent-failed', 'counter', ''],
  ['orleans-messaging-sent-dropped', 'counter', ''],
  ['orleans-messaging-rejected', 'counter', ''],
  ['orleans-messaging-rerouted', 'counter', ''],
  ['orleans-messaging-expired', 'counter', ''],
  ['orleans-messaging-sent-local', 'counter', ''],
  ['orleans-messaging-pings-sent', 'counter', ''],
  ['orleans-messaging-pings-received', 'counter', ''],
  ['orleans-messaging-pings-reply-received', 'counter', ''],
  ['orleans-messaging-pings-reply-missed', 'counter', ''],
  ['orleans-messaging-processing-dispatcher-received', 'counter', ''],
  ['orleans-messaging-processing-dispatcher-processed', 'counter', ''],
  ['orleans-messaging-processing-dispatcher-forwarded', 'counter', ''],
  ['orleans-gateway-connected-clients', 'updowncounter', ''],
  ['orleans-gateway-sent', 'counter', ''],
  ['orleans-gateway-received', 'counter', ''],
  ['orleans-networking-sockets-opened', 'counter', ''],
  ['orleans-networking-sockets-closed', 'counter', ''],
  ['orleans-grains', 'updowncounter', ''],
  ['orleans-system-targets', 'updowncounter', ''],
  ['orleans-catalog-activations', 'gauge', ''],
  ['orleans-catalog-activation-working-set', 'gauge', ''],
  ['orleans-consistent-ring-size', 'gauge', ''],
  ['orleans-directory-ring-size', 'gauge', ''],
  ['orleans-catalog-activation-created', 'counter', ''],
  ['orleans-catalog-activation-destroyed', 'counter', ''],
  ['orleans-catalog-activation-latency', 'histogram', 'ms'],
  ['orleans-app-requests-latency', 'histogram', 'ms'],
  ['orleans-app-requests-timedout', 'counter', ''],
  ['orleans-app-requests-canceled', 'counter', ''],
];
const units = { ms: 'milliseconds', s: 'seconds', bytes: 'bytes', By: 'bytes' };
const orleans = new Set();
for (const [name, kind, unit] of orleansInstruments) {
  let n = name.replace(/[-.]/g, '_');
  if (unit && !n.endsWith(`_${units[unit]}`)) n += `_${units[unit]}`;
  if (kind === 'counter') orleans.add(`${n}_total`);
  else if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) orleans.add(n + s);
  else orleans.add(n);
}

// --- walking a dashboard ------------------------------------------------------------------------
const allPanels = d => (d.panels || []).flatMap(p => (p.type === 'row' ? [p, ...(p.panels || [])] : [p]));
const builtinDatasources = new Set(['-- Grafana --', '-- Mixed --', '-- Dashboard --', 'grafana']);
// Every {type?, uid} data-source reference, with where it is.
function datasourceRefs(d) {
  const refs = [];
  const walk = (o, path) => {
    if (Array.isArray(o)) o.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (o && typeof o === 'object') {
      for (const [k, v] of Object.entries(o)) {
        if (k === 'datasource' && v && typeof v === 'object' && !Array.isArray(v)) refs.push({ path: `${path}.datasource`, ref: v });
        else if (k === 'datasource' && typeof v === 'string') refs.push({ path: `${path}.datasource`, ref: { uid: v } });
        else walk(v, `${path}.${k}`);
      }
    }
  };
  walk(d, '$');
  // Explore links carry their panes (with data-source uids) URL-encoded.
  for (const [i, l] of (d.links || []).entries()) {
    const m = /[?&]panes=([^&]*)/.exec(l.url || '');
    if (!m) continue;
    try {
      const panes = JSON.parse(decodeURIComponent(m[1]));
      const inner = [];
      const walkPanes = (o, path) => {
        if (Array.isArray(o)) o.forEach((x, j) => walkPanes(x, `${path}[${j}]`));
        else if (o && typeof o === 'object') for (const [k, v] of Object.entries(o)) {
          if (k === 'datasource') inner.push({ path: `${path}.datasource`, ref: typeof v === 'string' ? { uid: v } : v });
          else walkPanes(v, `${path}.${k}`);
        }
      };
      walkPanes(panes, `$.links[${i}].url#panes`);
      refs.push(...inner);
    } catch (e) { refs.push({ path: `$.links[${i}].url`, ref: { uid: `<unparsable panes: ${e.message}>` } }); }
  }
  return refs;
}
const isPrometheus = (ds, fallback) => {
  const r = ds || fallback;
  return !r || r.type === 'prometheus' || provisioned.get(r.uid) === 'prometheus';
};
// Every PromQL expression: { where, expr, kind: 'expr' | 'variable' }.
function expressions(d) {
  const out = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets || []) {
      if (!isPrometheus(t.datasource, p.datasource)) continue;
      out.push({ where: `panel ${p.id} "${p.title}" target ${t.refId}`, expr: t.expr, kind: 'expr' });
    }
  }
  for (const v of d.templating?.list || []) {
    if (v.type !== 'query' || !isPrometheus(v.datasource)) continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    out.push({ where: `variable ${v.name}`, expr: q, kind: 'variable' });
  }
  return out;
}
// Grafana's variable functions for Prometheus query variables -> the PromQL inside (or null).
function variablePromql(q) {
  let m;
  if ((m = /^\s*label_values\(\s*(.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/s.exec(q))) return m[1];
  if ((m = /^\s*label_values\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(q))) return null;
  if ((m = /^\s*label_names\(\s*(.*)\s*\)\s*$/s.exec(q))) return m[1] || null;
  if ((m = /^\s*metrics\((.*)\)\s*$/s.exec(q))) return null;
  if ((m = /^\s*query_result\((.*)\)\s*$/s.exec(q))) return m[1];
  return undefined; // not a variable function
}
const builtinVariables = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms',
  '__dashboard', '__name', '__org', '__user', '__from', '__to', '__auto']);
// Grafana's substitution: $var, ${var}, ${var:format}, [[var]]. Durations become 5m, numbers 300,
// everything else a plain word (valid as a label value inside quotes and as a label name).
function substitute(expr, defined) {
  const unknown = [];
  const value = name => {
    if (['__rate_interval', '__interval', '__range', '__auto'].includes(name)) return '5m';
    if (builtinVariables.has(name)) return '300';
    if (!defined.has(name)) unknown.push(name);
    return 'x';
  };
  // $1, $2 are label_replace's capture groups, which Grafana leaves alone (no variable has that name).
  const s = expr
    .replace(/\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]/g, (_, n) => value(n))
    .replace(/\$\{([A-Za-z0-9_]+)(?:\.[^:}]+)?(?::[^}]*)?\}/g, (_, n) => value(n))
    .replace(/\$([A-Za-z0-9_]+)/g, (all, n) => (/^[0-9]+$/.test(n) ? all : value(n)));
  return { s, unknown };
}
// Parse with lezer-promql: syntax errors, selected metric names and their matcher labels.
function parsePromql(s) {
  const tree = promqlParser.parse(s);
  const errors = [], selectors = [];
  tree.iterate({
    enter: n => {
      if (n.type.isError) errors.push(`syntax error at ${n.from}: ${JSON.stringify(s.slice(Math.max(0, n.from - 20), n.from + 20))}`);
      if (n.name === 'VectorSelector') {
        const node = n.node;
        const id = node.getChild('Identifier');
        const labels = [];
        let name = id ? s.slice(id.from, id.to) : null;
        const matchers = node.getChild('LabelMatchers');
        if (matchers) {
          for (let c = matchers.firstChild; c; c = c.nextSibling) {
            const ln = c.getChild('LabelName');
            if (!ln) continue;
            const label = s.slice(ln.from, ln.to);
            if (label === '__name__') {
              const v = c.getChild('StringLiteral');
              if (v) name = s.slice(v.from + 1, v.to - 1);
            } else labels.push(label);
          }
        }
        selectors.push({ name, labels });
      }
    },
  });
  if (!s.trim()) errors.push('empty expression');
  return { errors, selectors };
}

// --- 1. types -----------------------------------------------------------------------------------
const schemaTypes = join(here, 'node_modules/@grafana/schema/dist/types');
const panelcfg = p => join(schemaTypes, 'raw/composable', p, 'panelcfg/x/types.gen').replace(/\\/g, '/');
// Panel plugin id -> @grafana/schema panelcfg module (Options, and FieldConfig where it has one).
const panelTypes = {
  timeseries: { dir: 'timeseries', fieldConfig: true },
  stat: { dir: 'stat', fieldConfig: false },
  'status-history': { dir: 'statushistory', fieldConfig: true },
  'state-timeline': { dir: 'statetimeline', fieldConfig: true },
  bargauge: { dir: 'bargauge', fieldConfig: false },
  gauge: { dir: 'gauge', fieldConfig: false },
  heatmap: { dir: 'heatmap', fieldConfig: true },
  table: { dir: 'table', fieldConfig: true },
  text: { dir: 'text', fieldConfig: false },
};
const ident = t => t.replace(/[^A-Za-z0-9]/g, '_');
const prelude = () => `// Generated by check-dashboards.mjs; compiled with tsc --noEmit, never run.
import type { Dashboard, RowPanel, Panel, FieldConfig, FieldConfigSource, MatcherConfig, VariableModel, DataSourceRef } from '@grafana/schema';
${Object.entries(panelTypes).map(([t, { dir }]) => `import type * as ${ident(t)} from '${panelcfg(dir)}';`).join('\n')}

// JSON has no enums: a string enum of the schema is compared by its values.
type Json<T> = T extends string ? \`\${T}\` : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<Json<U>> : T extends object ? { [K in keyof T]: Json<T[K]> } : T;

// The query shapes of the two data sources (the schema package ships no Prometheus or Jaeger query type).
interface PrometheusQuery {
  refId: string; datasource?: { type: 'prometheus'; uid: string }; hide?: boolean;
  expr: string; legendFormat?: string; range?: boolean; instant?: boolean; exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap'; editorMode?: 'code' | 'builder'; interval?: string; intervalFactor?: number;
}
interface JaegerQuery {
  refId: string; datasource?: { type: 'jaeger'; uid: string }; hide?: boolean;
  queryType: 'search' | 'upload' | 'dependencyGraph'; query?: string; service?: string; operation?: string;
  tags?: string; minDuration?: string; maxDuration?: string; limit?: number;
}
type Target = PrometheusQuery | JaegerQuery;

type Defaults<F> = Omit<Json<FieldConfig>, 'custom'> & { custom?: Json<F> };
type FieldConfigOf<F> = Omit<Json<FieldConfigSource>, 'defaults' | 'overrides'> & {
  defaults: Defaults<F>;
  overrides: Array<{ matcher: Json<MatcherConfig>; properties: Array<{ id: string; value?: unknown }> }>;
};
type PanelOf<T extends string, O, F> = Omit<Json<Panel>, 'type' | 'options' | 'fieldConfig' | 'targets'> & {
  type: T; options: Json<O>; fieldConfig: FieldConfigOf<F>; targets?: Target[];
};
interface Plugins {
${Object.entries(panelTypes).map(([t, { fieldConfig }]) => `  '${t}': PanelOf<'${t}', ${ident(t)}.Options, ${fieldConfig ? `${ident(t)}.FieldConfig` : '{}'}>;`).join('\n')}
}
type AnyPanel = Plugins[keyof Plugins];
type Row = Omit<Json<RowPanel>, 'panels'> & { panels: AnyPanel[] };
type Variable = Omit<Json<VariableModel>, 'query' | 'datasource'> & {
  datasource?: DataSourceRef | null;
  query?: string | { qryType?: number; query: string; refId: string };
};
type StrictDashboard = Omit<Json<Dashboard>, 'panels' | 'templating'> & {
  panels?: Array<AnyPanel | Row>;
  templating?: { list?: Variable[] };
};
// An override property id: a field-config key, or custom.<key of the plugin's FieldConfig>.
type CustomOf<P> = P extends { fieldConfig: { defaults: { custom?: infer C } } } ? C : never;
type OverrideId<T extends keyof Plugins> = Exclude<keyof FieldConfig, 'custom'> | \`custom.\${Extract<keyof CustomOf<Plugins[T]>, string>}\`;
declare function override<T extends keyof Plugins>(panelType: T, id: OverrideId<T>): void;
`;
function tsFile(d) {
  const lines = [prelude(), `export const dashboard: StrictDashboard = ${JSON.stringify(d, null, 2)};`, ''];
  for (const p of allPanels(d)) {
    for (const o of p.fieldConfig?.overrides || []) {
      for (const prop of o.properties || []) lines.push(`override(${JSON.stringify(p.type)}, ${JSON.stringify(prop.id)}); // panel ${p.id}`);
    }
  }
  return lines.join('\n') + '\n';
}
const tsFiles = dashboards.map(({ file, d }) => {
  const ts = join(work, `${ident(basename(file, '.json'))}.ts`);
  writeFileSync(ts, tsFile(d));
  return { file, ts };
});
// Self-test: one misspelled option deep in a panel, and one unknown override id, must both be caught.
const selftest = join(work, 'selftest_broken.ts');
{
  const d = { uid: 'selftest', title: 'self-test', schemaVersion: 42, panels: [{ id: 1, type: 'timeseries', title: 't',
    options: { legend: { showLegend: true, placement: 'bottom', calcs: [], dispalyMode: 'list' }, tooltip: { mode: 'single', sort: 'none' } },
    fieldConfig: { defaults: { custom: { lineWidth: 1 } }, overrides: [{ matcher: { id: 'byName', options: 'x' }, properties: [{ id: 'custom.lineWidht', value: 2 }] }] } }] };
  writeFileSync(selftest, tsFile(d));
}
const tscErrors = typeCheck(work, [...tsFiles.map(t => t.ts), selftest]);
const schemaVersion = defaultDashboard.schemaVersion;
for (const { file, ts } of tsFiles) {
  const d = dashboards.find(x => x.file === file).d;
  const p = tscErrors.filter(l => l.includes(basename(ts))).map(l => l.replace(/^.*[\\/]/, ''));
  if (d.schemaVersion !== schemaVersion) p.push(`schemaVersion ${d.schemaVersion}, @grafana/schema's is ${schemaVersion}`);
  result(`${file}: types: @grafana/schema Dashboard with each panel plugin's Options/FieldConfig, strict tsc (schemaVersion ${schemaVersion})`, p);
}
{
  const mine = tscErrors.filter(l => l.includes(basename(selftest)));
  const p = [];
  if (!mine.some(l => l.includes('dispalyMode'))) p.push('a timeseries legend with "dispalyMode" was accepted');
  if (!mine.some(l => l.includes('custom.lineWidht'))) p.push('an override of "custom.lineWidht" was accepted');
  result('types: a misspelled option and a misspelled override id are rejected (self-test)', p);
}
const stray = tscErrors.filter(l => !tsFiles.some(t => l.includes(basename(t.ts))) && !l.includes(basename(selftest)));
if (stray.length) result('types: type check setup', stray);

// --- 2. ids and uids ----------------------------------------------------------------------------
const uids = new Map();
for (const { file, d } of dashboards) {
  const p = [];
  const ids = new Map();
  for (const panel of allPanels(d)) {
    if (!Number.isInteger(panel.id)) p.push(`panel "${panel.title}" has no integer id`);
    else if (ids.has(panel.id)) p.push(`panel id ${panel.id} used by "${ids.get(panel.id)}" and "${panel.title}"`);
    else ids.set(panel.id, panel.title);
    if (panel.type !== 'row') {
      if (!panel.title) p.push(`panel ${panel.id} has no title`);
      if (!panel.description) p.push(`panel ${panel.id} "${panel.title}" has no description`);
      if (!['text'].includes(panel.type) && !panel.fieldConfig?.defaults?.unit) p.push(`panel ${panel.id} "${panel.title}" sets no unit`);
    }
  }
  const variables = new Map((d.templating?.list || []).map(v => [v.name, v]));
  for (const panel of allPanels(d)) {
    if (!panel.repeat) continue;
    const v = variables.get(panel.repeat);
    if (!v) p.push(`panel ${panel.id} "${panel.title}" repeats by undefined variable ${panel.repeat}`);
    else if (!v.multi && !v.includeAll) p.push(`panel ${panel.id} "${panel.title}" repeats by ${panel.repeat}, which allows neither several values nor All`);
  }
  if (typeof d.uid !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(d.uid)) p.push(`uid ${JSON.stringify(d.uid)} is not 1-40 of [A-Za-z0-9_-]`);
  else if (uids.has(d.uid)) p.push(`uid ${d.uid} also used by ${uids.get(d.uid)}`);
  else uids.set(d.uid, file);
  if (d.id !== undefined && d.id !== null) p.push('a provisioned dashboard must not carry a numeric id');
  result(`${file}: uid ${d.uid} unique; ${ids.size} panel ids unique; every panel has a title, description and unit; repeats by multi-value variables`, p);
}

// --- 3. data sources ----------------------------------------------------------------------------
for (const { file, d } of dashboards) {
  const p = [];
  const refs = datasourceRefs(d);
  const vars = new Set((d.templating?.list || []).map(v => v.name));
  for (const { path, ref } of refs) {
    const uid = ref.uid;
    if (typeof uid !== 'string') { p.push(`${path}: no uid`); continue; }
    const v = /^\$\{?([A-Za-z0-9_]+)\}?$/.exec(uid);
    if (v) { if (!vars.has(v[1])) p.push(`${path}: variable ${uid} not defined`); continue; }
    if (builtinDatasources.has(uid)) continue;
    if (!provisioned.has(uid)) p.push(`${path}: uid ${uid} is not provisioned`);
    else if (ref.type && ref.type !== provisioned.get(uid)) p.push(`${path}: uid ${uid} is type ${provisioned.get(uid)}, referenced as ${ref.type}`);
  }
  const used = [...new Set(refs.map(r => r.ref.uid))].filter(u => provisioned.has(u));
  result(`${file}: ${refs.length} data-source references, all provisioned (${used.join(', ')})`, p);
}

// --- 4. PromQL and 5. metric names --------------------------------------------------------------
const promtool = (() => { try { execFileSync('promtool', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const allExprs = [];
for (const { file, d } of dashboards) {
  const defined = new Set((d.templating?.list || []).map(v => v.name));
  const syntax = [], names = [];
  const exprs = expressions(d);
  for (const { where, expr, kind } of exprs) {
    if (typeof expr !== 'string' || !expr.trim()) { syntax.push(`${where}: no expression`); continue; }
    let promql = expr;
    if (kind === 'variable') {
      promql = variablePromql(expr);
      if (promql === undefined) { syntax.push(`${where}: ${JSON.stringify(expr)} is not label_values/label_names/metrics/query_result`); continue; }
      if (promql === null) continue;
    }
    const { s, unknown } = substitute(promql, defined);
    for (const u of unknown) syntax.push(`${where}: variable $${u} is not defined`);
    const { errors, selectors } = parsePromql(s);
    for (const e of errors) syntax.push(`${where}: ${e} in ${JSON.stringify(s)}`);
    if (!errors.length) allExprs.push({ file, where, s });
    for (const { name, labels } of selectors) {
      if (name === null) { names.push(`${where}: a selector without a metric name`); continue; }
      if (name === 'up' || orleans.has(name)) continue;
      if (!telemetry.has(name)) { names.push(`${where}: ${name} is neither in docs/TELEMETRY.md, an Orleans metric, nor up`); continue; }
      const allowed = new Set([...telemetry.get(name), 'instance']);
      for (const l of labels) if (!allowed.has(l)) names.push(`${where}: ${name} has no label ${l} (docs/TELEMETRY.md: ${telemetry.get(name).join(', ')})`);
    }
  }
  result(`${file}: ${exprs.length} PromQL expressions parse (lezer-promql, variables substituted), every variable defined`, syntax);
  result(`${file}: every metric is in docs/TELEMETRY.md (with its labels), an Orleans metric, or up`, names);
}
// The same expressions through Prometheus' own parser: one recording rule each, `promtool check rules`.
if (promtool && allExprs.length) {
  const rules = { groups: [{ name: 'dashboards', rules: allExprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: e.s })) }] };
  const file = join(work, 'rules.json');
  writeFileSync(file, JSON.stringify(rules, null, 2));
  let out = '', ok = true;
  try { execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8', stdio: 'pipe' }); } catch (e) { ok = false; out = (e.stdout || '') + (e.stderr || ''); }
  const p = [];
  if (!ok) {
    for (const l of out.split('\n').filter(Boolean)) {
      const m = /expr_(\d+)/.exec(l) || /group "dashboards", rule (\d+)/.exec(l);
      const e = m ? allExprs[Number(m[1]) - (l.includes('rule ') ? 1 : 0)] : null;
      p.push(e ? `${e.file} ${e.where}: ${l.trim()}` : l.trim());
    }
  }
  result(`every expression also parses with Prometheus' parser (promtool check rules, ${allExprs.length} expressions)`, p);
} else if (!promtool) {
  console.log('skip promtool check rules: promtool not installed');
}
// Self-test: a broken expression and an unknown metric must be caught.
{
  const p = [];
  if (!parsePromql(substitute('sum(rate(clusterconv_train_samples_total{job=~"$job"}[$__rate_interval])', new Set(['job'])).s).errors.length) p.push('an unclosed parenthesis parsed');
  if (!parsePromql('rate(x[5m]) +').errors.length) p.push('a dangling operator parsed');
  const sel = parsePromql('clusterconv_no_such_metric{job="a"}').selectors;
  if (sel[0]?.name !== 'clusterconv_no_such_metric' || telemetry.has(sel[0].name)) p.push('an unknown metric name was not found');
  if (substitute('foo{a="$nope"}', new Set()).unknown[0] !== 'nope') p.push('an undefined variable was not reported');
  result('PromQL: a broken expression, an unknown metric and an undefined variable are caught (self-test)', p);
}

process.exit(failed ? 1 : 0);
