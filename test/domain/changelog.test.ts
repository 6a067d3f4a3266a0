/** Changelog entries, release dates, changes from commit subjects, insertion into CHANGELOG.md. */
import { describe, expect, it } from 'vitest';
import {
  changesFromCommits,
  docsSnapshotPath,
  insertChangelogEntry,
  releaseDate,
  renderChangelogEntry,
} from '../../src/domain/changelog';
import type { ChangeSet } from '../../src/domain/changelog';

const none: ChangeSet = { added: [], fixed: [], changed: [] };

describe('renderChangelogEntry', () => {
  it.each<[string, ChangeSet, string]>([
    [
      'all three sections, in Keep a Changelog order',
      { added: ['Wishlist', 'Vouchers'], fixed: ['Cart total rounding'], changed: ['Faster search'] },
      '## [1.2.0] - 2025-10-14\n\n### Added\n\n- Wishlist\n- Vouchers\n\n### Changed\n\n- Faster search\n\n### Fixed\n\n- Cart total rounding\n',
    ],
    [
      'only the non-empty sections',
      { ...none, fixed: ['Login redirect'] },
      '## [1.2.0] - 2025-10-14\n\n### Fixed\n\n- Login redirect\n',
    ],
    ['no change at all', none, '## [1.2.0] - 2025-10-14\n\n### Changed\n\n- Maintenance release.\n'],
    [
      'only blank lines count as no change',
      { ...none, added: ['  ', '\n'] },
      '## [1.2.0] - 2025-10-14\n\n### Changed\n\n- Maintenance release.\n',
    ],
    [
      'line breaks and runs of spaces collapsed',
      { ...none, changed: ['  Checkout:\r\n  one page\n\nfor guests  '] },
      '## [1.2.0] - 2025-10-14\n\n### Changed\n\n- Checkout: one page for guests\n',
    ],
  ])('%s', (_, changes, expected) => {
    expect(renderChangelogEntry({ version: '1.2.0', date: '2025-10-14', changes })).toBe(expected);
  });

  it.each([
    [
      'a date with a time',
      '1.2.0',
      '2025-10-14T00:00:00Z',
      /date "2025-10-14T00:00:00Z" must be a calendar date/,
    ],
    ['a date that does not exist', '1.2.0', '2025-02-30', /must be a calendar date YYYY-MM-DD/],
    ['a date in another order', '1.2.0', '14-10-2025', /must be a calendar date/],
    ['an empty version', '', '2025-10-14', /version "" must be a single word/],
    ['a version with a space', '1.2.0 beta', '2025-10-14', /must be a single word/],
    ['a version with a bracket', '1.2.0]', '2025-10-14', /must be a single word/],
  ])('refuses %s', (_, version, date, message) => {
    expect(() => renderChangelogEntry({ version, date, changes: none })).toThrow(RangeError);
    expect(() => renderChangelogEntry({ version, date, changes: none })).toThrow(message);
  });

  it('accepts 29 February of a leap year', () => {
    expect(renderChangelogEntry({ version: '2.0.0', date: '2028-02-29', changes: none })).toMatch(
      /^## \[2\.0\.0\] - 2028-02-29\n/,
    );
  });
});

describe('releaseDate', () => {
  it.each([
    ['2025-10-14T16:59:59Z', 'Asia/Jakarta', '2025-10-14'],
    ['2025-10-14T17:00:00Z', 'Asia/Jakarta', '2025-10-15'], // midnight WIB
    ['2025-10-14T17:00:00Z', 'UTC', '2025-10-14'],
    ['2025-10-15T03:00:00Z', 'America/Los_Angeles', '2025-10-14'],
    ['2025-12-31T23:30:00Z', 'Europe/Berlin', '2026-01-01'],
    ['2026-03-29T00:30:00Z', 'Europe/Berlin', '2026-03-29'], // the night of the daylight-saving change
  ])('%s in %s is %s', (iso, zone, expected) => {
    expect(releaseDate(Date.parse(iso), zone)).toBe(expected);
  });

  it('refuses an unknown zone and an instant that is not a number', () => {
    expect(() => releaseDate(0, 'Atlantis/Capital')).toThrow(RangeError);
    expect(() => releaseDate(Number.NaN, 'UTC')).toThrow(/atMs must be an epoch time/);
  });
});

describe('changesFromCommits', () => {
  const commit = (subject: string, merge = false) => ({ subject, merge });
  it.each<[string, { subject: string; merge: boolean }[], ChangeSet]>([
    ['feat goes to added', [commit('feat: wishlist')], { ...none, added: ['wishlist'] }],
    ['a scope is stripped', [commit('feat(cart): vouchers')], { ...none, added: ['vouchers'] }],
    [
      'fix goes to fixed',
      [commit('fix(auth): token refresh loop')],
      { ...none, fixed: ['token refresh loop'] },
    ],
    [
      'other types go to changed, prefix stripped',
      [commit('refactor: split checkout'), commit('perf(api): cache prices'), commit('chore: bump next')],
      { ...none, changed: ['split checkout', 'cache prices', 'bump next'] },
    ],
    [
      'subjects that are not Conventional Commits go to changed as written',
      [commit('Update README and storefront footer'), commit('Revert "feat: wishlist"')],
      { ...none, changed: ['Update README and storefront footer', 'Revert "feat: wishlist"'] },
    ],
    ['merges are left out', [commit("Merge branch 'develop'", true), commit('feat: x', true)], none],
    [
      'the release commit is left out',
      [commit('chore(release): 1.2.0'), commit('Chore(Release): 1.1.0')],
      none,
    ],
    ['docs are noise', [commit('docs: typo'), commit('docs(api): examples')], none],
    [
      'breaking changes are marked',
      [
        commit('feat!: drop the v1 API'),
        commit('fix(auth)!: tokens expire after 1h'),
        commit('refactor!: rename env'),
      ],
      {
        added: ['BREAKING: drop the v1 API'],
        fixed: ['BREAKING: tokens expire after 1h'],
        changed: ['BREAKING: rename env'],
      },
    ],
    [
      'a breaking docs change is kept',
      [commit('docs!: new URL scheme')],
      { ...none, changed: ['BREAKING: new URL scheme'] },
    ],
    [
      'types in upper case',
      [commit('FEAT: search'), commit('Fix: typo')],
      { ...none, added: ['search'], fixed: ['typo'] },
    ],
    [
      'order kept, repeats once',
      [commit('fix: b'), commit('fix: a'), commit('fix: b'), commit('feat(x): b')],
      { ...none, added: ['b'], fixed: ['b', 'a'] },
    ],
    ['a type without text is left out', [commit('feat: '), commit('fix:'), commit('   ')], none],
    ['no commits', [], none],
    ['a multi-line subject becomes one line', [commit('feat: one\n  two')], { ...none, added: ['one two'] }],
    [
      'a colon later in the text is not a type',
      [commit('Set timeout: 30s')],
      { ...none, changed: ['Set timeout: 30s'] },
    ],
  ])('%s', (_, commits, expected) => {
    expect(changesFromCommits(commits)).toEqual(expected);
  });
});

describe('insertChangelogEntry', () => {
  const entry = renderChangelogEntry({
    version: '1.2.0',
    date: '2025-10-14',
    changes: { ...none, added: ['Wishlist'] },
  });
  const replaced = renderChangelogEntry({
    version: '1.2.0',
    date: '2025-10-15',
    changes: { ...none, fixed: ['Cart'] },
  });
  const title = '# Changelog\n\nAll notable changes to this project are documented in this file.\n';
  const v110 = '## [1.1.0] - 2025-09-01\n\n### Fixed\n\n- Search\n';
  const unreleased = '## [Unreleased]\n\n### Added\n\n- Dark mode (in progress)\n';
  const links =
    '[unreleased]: https://example.com/compare/v1.1.0...HEAD\n[1.1.0]: https://example.com/compare/v1.0.0...v1.1.0\n';

  it.each<[string, string, string, string]>([
    [
      'below the Unreleased section',
      `${title}\n${unreleased}\n${v110}`,
      entry,
      `${title}\n${unreleased}\n${entry}\n${v110}`,
    ],
    [
      'below the title and its introduction when there is no Unreleased',
      `${title}\n${v110}`,
      entry,
      `${title}\n${entry}\n${v110}`,
    ],
    ['below the title of a changelog without releases', title, entry, `${title}\n${entry}`],
    ['into an empty file', '', entry, `# Changelog\n\n${entry}`],
    ['into a blank file', '\n\n', entry, `# Changelog\n\n${entry}`],
    [
      'above the link references',
      `${title}\n${unreleased}\n${links}`,
      entry,
      `${title}\n${unreleased}\n${entry}\n${links}`,
    ],
    [
      'above the link references without Unreleased and releases',
      `${title}\n${links}`,
      entry,
      `${title}\n${entry}\n${links}`,
    ],
    [
      'in place of the entry of the same version',
      `${title}\n${unreleased}\n${entry}\n${v110}`,
      replaced,
      `${title}\n${unreleased}\n${replaced}\n${v110}`,
    ],
    [
      'in place of the same version written without brackets and as the last section',
      `${title}\n${v110}\n## 1.2.0\n\n- old text\n\n${links}`,
      replaced,
      `${title}\n${v110}\n${replaced}\n${links}`,
    ],
    [
      'with one blank line on either side, the rest of the text as it was',
      `${title}\n\n\n${unreleased}\n\n\n\n${v110}\n\n`,
      entry,
      `${title}\n\n\n${unreleased}\n${entry}\n${v110}`,
    ],
    [
      'with CRLF line endings kept',
      `${title}\n${unreleased}\n${v110}`.replace(/\n/g, '\r\n'),
      entry,
      `${title}\n${unreleased}\n${entry}\n${v110}`.replace(/\n/g, '\r\n'),
    ],
  ])('inserts %s', (_, changelog, newEntry, expected) => {
    expect(insertChangelogEntry(changelog, newEntry, '1.2.0')).toBe(expected);
  });

  it('is idempotent', () => {
    const once = insertChangelogEntry(`${title}\n${unreleased}\n${v110}\n${links}`, entry, '1.2.0');
    expect(insertChangelogEntry(once, entry, '1.2.0')).toBe(once);
    expect(once.match(/## \[1\.2\.0\]/g)).toHaveLength(1);
  });

  it('does not take 1.2.0 for 1.2.0-like versions', () => {
    const other = '## [1.2.01] - 2025-10-01\n\n- other\n';
    expect(insertChangelogEntry(`${title}\n${other}`, entry, '1.2.0')).toBe(`${title}\n${entry}\n${other}`);
  });

  it.each([
    ['an entry of another version', v110, '1.2.0', /must start with the heading of version 1\.2\.0/],
    ['an entry without a heading', '### Added\n\n- x\n', '1.2.0', /must start with the heading/],
    ['an empty version', entry, '', /must be a single word/],
  ])('refuses %s', (_, badEntry, version, message) => {
    expect(() => insertChangelogEntry(title, badEntry, version)).toThrow(RangeError);
    expect(() => insertChangelogEntry(title, badEntry, version)).toThrow(message);
  });
});

describe('docsSnapshotPath', () => {
  it.each([
    ['docs/releases/${version}/', '1.2.0', 'docs/releases/1.2.0/'],
    ['snapshots/v${version}/docs-${version}', '10.0.3', 'snapshots/v10.0.3/docs-10.0.3'],
    ['docs/latest/', '1.2.0', 'docs/latest/'],
  ])('%s for %s is %s', (template, version, expected) => {
    expect(docsSnapshotPath(template, version)).toBe(expected);
  });

  it.each(['', '..', '../etc', '1.2.0/..', 'a/b', ' 1.2.0', '.hidden'])(
    'refuses the version "%s"',
    (version) => {
      expect(() => docsSnapshotPath('docs/releases/${version}/', version)).toThrow(RangeError);
    },
  );
});
