/**
 * The changelog a release writes (L5), in the Keep a Changelog format (https://keepachangelog.com): the
 * entry of a version, the changes derived from commit subjects when the release input names none, and the
 * place of the entry in an existing CHANGELOG.md.
 *
 * Deterministic zone: imported by workflow code. Text in, text out; writing files is an activity's job.
 */
import { zoneOffsetMs } from '../config/time-zone';

/** The changes of one release, one line of text each. */
export interface ChangeSet {
  added: string[];
  fixed: string[];
  changed: string[];
}

/** Section order of Keep a Changelog, restricted to the sections a release fills. */
const SECTIONS = [
  ['added', 'Added'],
  ['changed', 'Changed'],
  ['fixed', 'Fixed'],
] as const satisfies readonly (readonly [keyof ChangeSet, string])[];

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** One line of changelog text: line breaks and runs of white space collapsed to single spaces. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function assertVersion(version: string): void {
  if (version === '' || /[\s[\]]/.test(version)) {
    throw new RangeError(`version "${version}" must be a single word such as 1.2.0`);
  }
}

/**
 * Keep-a-Changelog entry: `## [1.2.0] - 2025-10-14`, then `### Added`, `### Changed`, `### Fixed`
 * sections (only non-empty ones, in the order Keep a Changelog lists them: Added, Changed, Fixed), each
 * line `- text`; with no change at all a single `### Changed` line `- Maintenance release.`. Text is one
 * line each (newlines collapsed). Ends with a newline.
 *
 * Lines that are blank once collapsed are left out. Throws a `RangeError` when `date` is not a calendar
 * date `YYYY-MM-DD` or `version` is empty or contains white space or brackets.
 */
export function renderChangelogEntry(input: { version: string; date: string; changes: ChangeSet }): string {
  assertVersion(input.version);
  const m = ISO_DATE.exec(input.date);
  const valid =
    m !== null &&
    new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))).toISOString().slice(0, 10) ===
      input.date;
  if (!valid)
    throw new RangeError(`date "${input.date}" must be a calendar date YYYY-MM-DD such as 2025-10-14`);

  const blocks: string[] = [`## [${input.version}] - ${input.date}`];
  for (const [key, title] of SECTIONS) {
    const lines = input.changes[key].map(oneLine).filter((line) => line !== '');
    if (lines.length > 0) blocks.push(`### ${title}`, lines.map((line) => `- ${line}`).join('\n'));
  }
  if (blocks.length === 1) blocks.push('### Changed', '- Maintenance release.');
  return `${blocks.join('\n\n')}\n`;
}

/**
 * The date (YYYY-MM-DD) of `atMs` in `timeZone`. Throws a `RangeError` for an unknown time zone or an
 * instant that is not a finite number.
 */
export function releaseDate(atMs: number, timeZone: string): string {
  if (!Number.isFinite(atMs)) throw new RangeError(`atMs must be an epoch time in ms, not ${atMs}`);
  return new Date(atMs + zoneOffsetMs(timeZone, atMs)).toISOString().slice(0, 10);
}

/** `type(scope)!: description` of Conventional Commits; the type and scope are compared in lower case. */
const CONVENTIONAL = /^([A-Za-z]+)(?:\(([^()]*)\))?(!)?:\s*(.*)$/;

/**
 * Changes derived from commit subjects when the release input gives none: Conventional Commits
 * `feat:`/`feat(x):` -> added, `fix:` -> fixed, everything else except merges, `chore(release)` and
 * `docs:`-only noise -> changed; the type prefix stripped, breaking changes (`!`) marked "BREAKING: ".
 *
 * Subjects keep the order given; a subject repeated within a section appears once. Subjects that are not
 * Conventional Commits go to `changed` as written. A breaking `docs!:` is kept (under changed): a breaking
 * change is never noise. Never throws.
 */
export function changesFromCommits(commits: readonly { subject: string; merge: boolean }[]): ChangeSet {
  const changes: ChangeSet = { added: [], fixed: [], changed: [] };
  for (const commit of commits) {
    if (commit.merge) continue;
    const subject = oneLine(commit.subject);
    const m = CONVENTIONAL.exec(subject);
    let section: keyof ChangeSet = 'changed';
    let text = subject;
    if (m) {
      const type = m[1]!.toLowerCase();
      const scope = m[2]?.trim().toLowerCase();
      const breaking = m[3] === '!';
      if (type === 'chore' && scope === 'release') continue;
      if (type === 'docs' && !breaking) continue;
      if (type === 'feat') section = 'added';
      else if (type === 'fix') section = 'fixed';
      text = m[4]!.trim();
      if (text !== '' && breaking) text = `BREAKING: ${text}`;
    }
    if (text === '' || changes[section].includes(text)) continue;
    changes[section].push(text);
  }
  return changes;
}

/** A release heading, `## [1.2.0] - ...` or `## 1.2.0`; group 1 is the version. */
const RELEASE_HEADING = /^##\s+\[?([^\]\s]+)\]?(?:\s|$)/;
/** A link reference definition, `[1.2.0]: https://...`: the footer of a Keep a Changelog file. */
const LINK_REFERENCE = /^\[[^\]]+\]:\s*\S/;

/**
 * Inserts an entry into an existing CHANGELOG.md text below the `## [Unreleased]` section (or below the
 * title when there is none); an entry for the same version already present is replaced, not duplicated.
 *
 * "Below the title" means below the title and its introduction, above the newest release. Link references
 * at the bottom of the file stay at the bottom. An empty text becomes `# Changelog` followed by the entry.
 * Blocks are separated by one blank line, the result ends with one newline and keeps the line endings of
 * the input (CRLF or LF). Idempotent: inserting the same entry twice gives the text of inserting it once.
 * Throws a `RangeError` when `entry` does not start with the heading of `version`.
 */
export function insertChangelogEntry(changelog: string, entry: string, version: string): string {
  assertVersion(version);
  const crlf = changelog.includes('\r\n');
  const entryLines = trimBlankLines(entry.replace(/\r\n/g, '\n').split('\n'));
  if (entryLines[0]?.match(RELEASE_HEADING)?.[1] !== version) {
    throw new RangeError(
      `the entry must start with the heading of version ${version}, such as "## [${version}] - ..."`,
    );
  }
  const lines = changelog.replace(/\r\n/g, '\n').split('\n');
  if (lines.every((line) => line.trim() === '')) return finish(['# Changelog', '', ...entryLines], crlf);

  const headingOf = (line: string): string | undefined => line.match(RELEASE_HEADING)?.[1];
  /** The index where the section starting at `from` (a `## ` heading) ends. */
  const sectionEnd = (from: number): number => {
    let i = from + 1;
    while (i < lines.length && !lines[i]!.startsWith('## ') && !LINK_REFERENCE.test(lines[i]!)) i++;
    return i;
  };

  let from: number;
  let to: number;
  const existing = lines.findIndex((line) => headingOf(line) === version);
  const unreleased = lines.findIndex((line) => headingOf(line)?.toLowerCase() === 'unreleased');
  if (existing >= 0) {
    from = existing;
    to = sectionEnd(existing);
  } else if (unreleased >= 0) {
    from = to = sectionEnd(unreleased);
  } else {
    const newest = lines.findIndex((line) => line.startsWith('## '));
    const footer = lines.findIndex((line) => LINK_REFERENCE.test(line));
    from = to = newest >= 0 ? newest : footer >= 0 ? footer : lines.length;
  }
  const before = trimBlankLines(lines.slice(0, from));
  const after = trimBlankLines(lines.slice(to));
  const out = [...before, ...(before.length > 0 ? [''] : []), ...entryLines];
  if (after.length > 0) out.push('', ...after);
  return finish(out, crlf);
}

function trimBlankLines(lines: readonly string[]): string[] {
  let start = 0;
  let end = lines.length;
  while (start < end && lines[start]!.trim() === '') start++;
  while (end > start && lines[end - 1]!.trim() === '') end--;
  return lines.slice(start, end);
}

function finish(lines: readonly string[], crlf: boolean): string {
  return `${lines.join(crlf ? '\r\n' : '\n')}${crlf ? '\r\n' : '\n'}`;
}

/**
 * `docs/releases/${version}/` with `${version}` replaced (the template of `release.docsSnapshot`). Every
 * occurrence is replaced; a template without the placeholder is returned as it is. Throws a `RangeError`
 * for a version that could leave the snapshot folder or is not a single path segment (`..`, `a/b`, empty).
 */
export function docsSnapshotPath(template: string, version: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version) || version.includes('..')) {
    throw new RangeError(
      `version "${version}" cannot name a docs snapshot folder; use a version such as 1.2.0`,
    );
  }
  return template.replaceAll('${version}', version);
}
