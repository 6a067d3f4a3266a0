/**
 * Summarises a V8 `.cpuprofile` (as written by `node --cpu-prof`) of the dev-server process: where its
 * busy time goes by component, the hottest functions by self time, and the dev-server functions by
 * inclusive time, each with file:line.
 *
 * The server's TypeScript runs through tsx, which transpiles with esbuild and `minifyWhitespace` (whole
 * modules on a line or two), so a profile's line:column points into generated code. Positions in
 * src/devserver are mapped back to the .ts source by re-running the same esbuild transform with a source
 * map, and checked against the function name; a position that does not check out is located by name.
 *
 * Standalone: npx tsx bench/cpuprofile.ts <file.cpuprofile> [--top 25] [--window startUs:endUs]...
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourceMap } from 'node:module';
import { transformSync } from 'esbuild';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A window of CLOCK_MONOTONIC time in microseconds (process.hrtime.bigint() / 1000n). */
export interface TimeWindow {
  startUs: number;
  endUs: number;
}

const REPO = path.resolve(__dirname, '..');

// --------------------------------------------------------------------------------------------------------
// Mapping generated positions of tsx-transpiled files back to the TypeScript source
// --------------------------------------------------------------------------------------------------------

interface MappedFile {
  map: SourceMap;
  lines: string[];
}
const mappedFiles = new Map<string, MappedFile | null>();

function mappedFile(file: string): MappedFile | null {
  let m = mappedFiles.get(file);
  if (m !== undefined) return m;
  m = null;
  try {
    const source = fs.readFileSync(file, 'utf8');
    // The options tsx 4 passes to esbuild for a CommonJS .ts module (see tsx/dist/register-*.cjs).
    const out = transformSync(source, {
      target: `node${process.versions.node}`,
      sourcemap: true,
      sourcesContent: false,
      minifyWhitespace: true,
      keepNames: true,
      format: 'cjs',
      sourcefile: file,
      banner: `__filename=${JSON.stringify(file)};(()=>{`,
      footer: '})()',
      platform: 'node',
      loader: 'ts',
    });
    m = { map: new SourceMap(JSON.parse(out.map) as never), lines: source.split('\n') };
  } catch {
    m = null;
  }
  mappedFiles.set(file, m);
  return m;
}

/** `file.ts:line` (1-based) of a function in a tsx-transpiled file, or undefined. */
function sourceLine(file: string, frame: CallFrame): number | undefined {
  const m = mappedFile(file);
  if (!m) return undefined;
  const name = frame.functionName.split('.').pop() ?? '';
  const entry = m.map.findEntry(frame.lineNumber, frame.columnNumber) as
    { originalLine?: number } | undefined;
  const mapped = entry?.originalLine;
  const mentions = (line: number | undefined) =>
    line !== undefined && (!name || (m.lines[line] ?? '').includes(name));
  if (mapped !== undefined) {
    // The mapped position is at or just before the function's first token; accept it if the name is there.
    for (let l = mapped; l <= mapped + 1; l++) if (mentions(l)) return l + 1;
    if (!name) {
      // An anonymous function (esbuild's keepNames defeats V8's name inference for `Name: (req) => ...`):
      // the position may be just inside it; the arrow or `function` is on this line or one just above.
      for (let l = mapped; l >= Math.max(0, mapped - 3); l--)
        if (/=>|\bfunction\b/.test(m.lines[l] ?? '')) return l + 1;
      return mapped + 1;
    }
  }
  if (name) {
    const pattern = new RegExp(
      `(^|[^\\w$])(async\\s+)?(get\\s+|set\\s+|static\\s+|private\\s+|function\\s+)?${name.replace(/[$]/g, '\\$')}\\s*(<[^>]*>)?\\s*(\\(|=|:)`,
    );
    const i = m.lines.findIndex((l) => pattern.test(l));
    if (i >= 0) return i + 1;
  }
  return mapped !== undefined ? mapped + 1 : undefined;
}

// --------------------------------------------------------------------------------------------------------
// Classification
// --------------------------------------------------------------------------------------------------------

function filePath(url: string): string {
  if (url.startsWith('file://')) {
    try {
      return fileURLToPath(url);
    } catch {
      return url;
    }
  }
  return url;
}

/** Path relative to the repository; a copy of the server elsewhere (--server-bin) counts as src/devserver too. */
function sourceRelative(p: string): string {
  const i = p.lastIndexOf('/src/devserver/');
  if (i >= 0 && !p.includes('node_modules/')) return p.slice(i + 1);
  return path.relative(REPO, p);
}

function component(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'native (program)';
    if (functionName === '(root)') return '(root)';
    // protobufjs compiles its encoders/decoders with new Function(): no script url.
    if (functionName === '' || functionName === '(anonymous)') return 'protobufjs generated encode/decode';
    return 'native builtins';
  }
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:');
  const p = filePath(url);
  const rel = sourceRelative(p);
  if (rel.startsWith('src/devserver/')) return rel;
  if (rel.startsWith('src/')) return 'src (other)';
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = p.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return rel;
}

export function describeFrame(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return frame.functionName ? name : '(anonymous: protobufjs generated encode/decode)';
  const p = filePath(frame.url);
  const rel = sourceRelative(p);
  if (rel.startsWith('src/') && rel.endsWith('.ts')) {
    const line = sourceLine(p, frame);
    let shownName = name;
    if (!frame.functionName && line !== undefined) {
      // Name an anonymous handler after the property or variable it is assigned to, when the line says.
      const text = mappedFile(p)?.lines[line - 1] ?? '';
      const owner = /([\w$]+)\s*[:=]\s*(async\s*)?(\(|[\w$]+\s*=>|function)/.exec(text)?.[1];
      if (owner) shownName = `(anonymous ${owner})`;
    }
    return `${shownName}  ${rel}:${line ?? '?'}`;
  }
  const nm = p.lastIndexOf('node_modules/');
  const shown =
    nm >= 0 ? p.slice(nm + 'node_modules/'.length) : frame.url.startsWith('node:') ? frame.url : rel;
  return `${name}  ${shown}:${frame.lineNumber + 1}`;
}

// --------------------------------------------------------------------------------------------------------
// Summary
// --------------------------------------------------------------------------------------------------------

export interface ProfileSummary {
  text: string;
  busyMs: number;
}

export function summarizeProfile(file: string, windows: TimeWindow[] = [], top = 25): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) byId.set(node.id, node);
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const key = (f: CallFrame) => `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}\u0000${f.columnNumber}`;
  const frames = new Map<string, CallFrame>();
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const byComponent = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;

  // Each sample's weight is the time to the next sample (the last one gets the average).
  const n = profile.samples.length;
  let t = profile.startTime;
  const stamps: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i] ?? 0;
    stamps[i] = t;
  }
  const avg = n > 1 ? (stamps[n - 1]! - stamps[0]!) / (n - 1) : 0;
  const inWindow = (ts: number) =>
    windows.length === 0 || windows.some((w) => ts >= w.startUs && ts <= w.endUs);

  for (let i = 0; i < n; i++) {
    if (!inWindow(stamps[i]!)) continue;
    const weight = i + 1 < n ? stamps[i + 1]! - stamps[i]! : avg;
    const node = byId.get(profile.samples[i]!);
    if (!node) continue;
    const leaf = node.callFrame;
    if (leaf.functionName === '(idle)') {
      idleUs += weight;
      continue;
    }
    busyUs += weight;
    const k = key(leaf);
    frames.set(k, leaf);
    self.set(k, (self.get(k) ?? 0) + weight);
    const comp = component(leaf);
    byComponent.set(comp, (byComponent.get(comp) ?? 0) + weight);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      const fk = key(f);
      if (seen.has(fk)) continue;
      seen.add(fk);
      frames.set(fk, f);
      total.set(fk, (total.get(fk) ?? 0) + weight);
    }
  }

  const pct = (us: number) => `${((100 * us) / Math.max(1, busyUs)).toFixed(1).padStart(5)}%`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const out: string[] = [];
  out.push(
    `profile ${path.relative(process.cwd(), file)}: busy ${(busyUs / 1000).toFixed(0)} ms, idle ${(idleUs / 1000).toFixed(0)} ms` +
      (windows.length ? ` (measured windows only)` : ''),
  );
  out.push('');
  out.push('Self time by component (% of busy):');
  for (const [comp, us] of [...byComponent].sort((a, b) => b[1] - a[1]).slice(0, 20))
    out.push(`  ${pct(us)} ${ms(us)}  ${comp}`);
  out.push('');
  out.push(`Top ${top} functions by self time:`);
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
    out.push(`  ${pct(us)} ${ms(us)}  ${describeFrame(frames.get(k)!)}`);
  out.push('');
  out.push(`Top ${top} src/devserver functions by self time:`);
  const devserverSelf = [...self].filter(([k]) => component(frames.get(k)!).startsWith('src/devserver/'));
  for (const [k, us] of devserverSelf.sort((a, b) => b[1] - a[1]).slice(0, top))
    out.push(`  ${pct(us)} ${ms(us)}  ${describeFrame(frames.get(k)!)}`);
  out.push('');
  out.push(`Top ${top} src/devserver functions by inclusive time (self + callees):`);
  const devserver = [...total].filter(([k]) => component(frames.get(k)!).startsWith('src/devserver/'));
  for (const [k, us] of devserver.sort((a, b) => b[1] - a[1]).slice(0, top)) {
    out.push(
      `  ${pct(us)} ${ms(us)}  (self ${pct(self.get(k) ?? 0).trim()})  ${describeFrame(frames.get(k)!)}`,
    );
  }
  return { text: out.join('\n'), busyMs: busyUs / 1000 };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--') && !/^\d+:\d+$/.test(a) && !/^\d+$/.test(a));
  if (!file) {
    process.stderr.write(
      'usage: tsx bench/cpuprofile.ts <file.cpuprofile> [--top N] [--window startUs:endUs]...\n',
    );
    process.exit(2);
  }
  const windows: TimeWindow[] = [];
  let top = 25;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    if (args[i] === '--window') {
      const [s, e] = (args[++i] ?? '').split(':').map(Number);
      windows.push({ startUs: s ?? 0, endUs: e ?? Infinity });
    }
  }
  process.stdout.write(`${summarizeProfile(file, windows, top).text}\n`);
}
