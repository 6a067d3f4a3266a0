import { describe, expect, it } from 'vitest';
import {
  compileVisibilityQuery,
  MAX_VISIBILITY_QUERY_BYTES,
  parseRfc3339,
  SYSTEM_SEARCH_ATTRIBUTES,
  VisibilityQueryError,
  type SearchAttributeType,
  type VisibilityRecord,
  type VisibilityValue,
} from '../../src/devserver/visibility-query.js';

const CUSTOM: Record<string, SearchAttributeType> = {
  CustomKeywordField: 'Keyword',
  CustomTextField: 'Text',
  CustomIntField: 'Int',
  CustomDoubleField: 'Double',
  CustomBoolField: 'Bool',
  CustomDatetimeField: 'Datetime',
  CustomKeywordListField: 'KeywordList',
  'Odd Name': 'Keyword',
};

const typeOf = (name: string): SearchAttributeType | undefined =>
  Object.hasOwn(SYSTEM_SEARCH_ATTRIBUTES, name)
    ? SYSTEM_SEARCH_ATTRIBUTES[name]
    : Object.hasOwn(CUSTOM, name)
      ? CUSTOM[name]
      : undefined;

const ms = (iso: string): number => {
  const value = Date.parse(iso);
  if (Number.isNaN(value)) throw new Error(`bad test date ${iso}`);
  return value;
};

const record = (fields: Record<string, VisibilityValue>): VisibilityRecord => ({
  get: (name) => (Object.hasOwn(fields, name) ? fields[name] : undefined),
});

/** The executions every filter case runs against, in their default order. */
const EXECUTIONS: ReadonlyArray<Record<string, VisibilityValue>> = [
  {
    WorkflowId: 'order-1',
    RunId: 'r1',
    WorkflowType: 'OrderWorkflow',
    ExecutionStatus: 'Running',
    StartTime: ms('2024-01-01T00:00:00Z'),
    TaskQueue: 'orders',
    HistoryLength: 10,
    CustomKeywordField: 'alpha',
    CustomTextField: 'The quick brown fox',
    CustomIntField: 5,
    CustomDoubleField: 1.5,
    CustomBoolField: true,
    CustomDatetimeField: ms('2024-06-01T12:00:00Z'),
    BuildIds: ['v1', 'v2'],
    TemporalChangeVersion: ['patch-1'],
  },
  {
    WorkflowId: 'order-2',
    RunId: 'r2',
    WorkflowType: 'OrderWorkflow',
    ExecutionStatus: 'Completed',
    StartTime: ms('2024-01-02T00:00:00Z'),
    CloseTime: ms('2024-01-02T01:00:00Z'),
    TaskQueue: 'orders',
    HistoryLength: 25,
    ParentWorkflowId: 'order-1',
    CustomKeywordField: 'beta',
    CustomTextField: 'Lazy dog jumps',
    CustomIntField: -3,
    CustomDoubleField: 2.25,
    CustomBoolField: false,
    BuildIds: ['v2'],
  },
  {
    WorkflowId: 'backup-1',
    RunId: 'r3',
    WorkflowType: 'BackupWorkflow',
    ExecutionStatus: 'Failed',
    StartTime: ms('2024-01-03T00:00:00Z'),
    CloseTime: ms('2024-01-03T05:00:00Z'),
    TaskQueue: 'backups',
    HistoryLength: 7,
    CustomKeywordField: 'alpha',
    CustomIntField: 100,
    BuildIds: [],
    CustomKeywordListField: null,
  },
  {
    WorkflowId: 'backup-2',
    RunId: 'r4',
    WorkflowType: 'BackupWorkflow',
    ExecutionStatus: 'Canceled',
    StartTime: ms('2024-01-03T00:00:00.500Z'),
    CloseTime: ms('2024-01-03T06:00:00Z'),
    TaskQueue: 'backups',
    HistoryLength: 3,
    CustomTextField: 'quick-brown FOX!',
  },
  {
    WorkflowId: 'release-1',
    RunId: 'r5',
    WorkflowType: 'ReleaseWorkflow',
    ExecutionStatus: 'ContinuedAsNew',
    StartTime: ms('2023-12-31T23:00:00Z'),
    CloseTime: ms('2024-01-01T00:00:00Z'),
    TaskQueue: 'releases',
    HistoryLength: 40,
    CustomKeywordField: "it's",
    CustomDoubleField: -0.5,
    CustomBoolField: true,
    TemporalChangeVersion: ['patch-1', 'patch-2'],
    'Odd Name': 'odd',
  },
];

const RECORDS = EXECUTIONS.map(record);
const idOf = (r: VisibilityRecord): VisibilityValue => r.get('WorkflowId');

function filter(query: string): VisibilityValue[] {
  const compiled = compileVisibilityQuery(query, typeOf);
  return RECORDS.filter((r) => compiled.matches(r)).map(idOf);
}

function sorted(query: string): VisibilityValue[] {
  const compiled = compileVisibilityQuery(query, typeOf);
  return RECORDS.filter((r) => compiled.matches(r))
    .sort((a, b) => compiled.compare(a, b))
    .map(idOf);
}

function errorOf(query: string, lookup = typeOf): VisibilityQueryError {
  try {
    compileVisibilityQuery(query, lookup);
  } catch (error) {
    expect(error).toBeInstanceOf(VisibilityQueryError);
    return error as VisibilityQueryError;
  }
  throw new Error(`expected ${JSON.stringify(query)} to be rejected`);
}

const ALL = ['order-1', 'order-2', 'backup-1', 'backup-2', 'release-1'];

describe('compileVisibilityQuery: filters', () => {
  const cases: Array<[string, string[]]> = [
    // empty
    ['', ALL],
    ['   \n\t ', ALL],
    // Keyword comparisons
    ["WorkflowId = 'order-1'", ['order-1']],
    ['WorkflowId = "order-2"', ['order-2']],
    ["WorkflowType != 'OrderWorkflow'", ['backup-1', 'backup-2', 'release-1']],
    ["WorkflowType <> 'OrderWorkflow'", ['backup-1', 'backup-2', 'release-1']],
    ["WorkflowId < 'order'", ['backup-1', 'backup-2']],
    ["WorkflowId <= 'order-1'", ['order-1', 'backup-1', 'backup-2']],
    ["WorkflowId > 'order-1'", ['order-2', 'release-1']],
    ["WorkflowId >= 'order-2'", ['order-2', 'release-1']],
    ["ExecutionStatus = 'Running'", ['order-1']],
    ["ExecutionStatus IN ('Completed', 'Failed', 'TimedOut')", ['order-2', 'backup-1']],
    ["ExecutionStatus NOT IN ('Running', 'Completed')", ['backup-1', 'backup-2', 'release-1']],
    ["WorkflowId BETWEEN 'backup-1' AND 'order-1'", ['order-1', 'backup-1', 'backup-2']],
    ["WorkflowId NOT BETWEEN 'backup-1' AND 'order-1'", ['order-2', 'release-1']],
    ["WorkflowId STARTS_WITH 'backup-'", ['backup-1', 'backup-2']],
    ["WorkflowId starts_with ''", ALL],
    ["WorkflowId NOT STARTS_WITH 'backup-'", ['order-1', 'order-2', 'release-1']],
    ["CustomKeywordField = 'it\\'s'", ['release-1']],
    ["CustomKeywordField = 'it''s'", ['release-1']],
    ['CustomKeywordField = "it\'s"', ['release-1']],
    ["`CustomKeywordField` = 'alpha'", ['order-1', 'backup-1']],
    ["`Odd Name` = 'odd'", ['release-1']],
    // missing values: every comparison is false, negated ones included
    ["CustomKeywordField != 'alpha'", ['order-2', 'release-1']],
    ["CustomKeywordField NOT IN ('alpha')", ['order-2', 'release-1']],
    ["ParentWorkflowId != 'nobody'", ['order-2']],
    ['ParentWorkflowId IS NULL', ['order-1', 'backup-1', 'backup-2', 'release-1']],
    ['ParentWorkflowId IS NOT NULL', ['order-2']],
    ['CloseTime is null', ['order-1']],
    ['CloseTime IS NOT NULL', ['order-2', 'backup-1', 'backup-2', 'release-1']],
    // Int
    ['HistoryLength = 10', ['order-1']],
    ['HistoryLength != 10', ['order-2', 'backup-1', 'backup-2', 'release-1']],
    ['HistoryLength > 10', ['order-2', 'release-1']],
    ['HistoryLength >= 10', ['order-1', 'order-2', 'release-1']],
    ['HistoryLength < 7', ['backup-2']],
    ['HistoryLength <= 7', ['backup-1', 'backup-2']],
    ["HistoryLength = '25'", ['order-2']],
    ['HistoryLength IN (3, 7, 99)', ['backup-1', 'backup-2']],
    ['HistoryLength NOT IN (3, 7)', ['order-1', 'order-2', 'release-1']],
    ['HistoryLength BETWEEN 7 AND 25', ['order-1', 'order-2', 'backup-1']],
    ['HistoryLength BETWEEN 25 AND 7', []],
    ['CustomIntField < 0', ['order-2']],
    ['CustomIntField > -5', ['order-1', 'order-2', 'backup-1']],
    ['CustomIntField=-3', ['order-2']],
    ['CustomIntField = 1e2', ['backup-1']],
    // Double
    ['CustomDoubleField = 1.5', ['order-1']],
    ['CustomDoubleField > 1', ['order-1', 'order-2']],
    ['CustomDoubleField < 0', ['release-1']],
    ['CustomDoubleField >= -0.5', ['order-1', 'order-2', 'release-1']],
    ['CustomDoubleField BETWEEN 1.5 AND 2.25', ['order-1', 'order-2']],
    ['CustomDoubleField IN (2.25, 7)', ['order-2']],
    ["CustomDoubleField = '2.25'", ['order-2']],
    ['CustomDoubleField = 2', []],
    // Bool
    ['CustomBoolField = true', ['order-1', 'release-1']],
    ['CustomBoolField = FALSE', ['order-2']],
    ['CustomBoolField != true', ['order-2']],
    ["CustomBoolField = 'true'", ['order-1', 'release-1']],
    ['CustomBoolField IN (false)', ['order-2']],
    ['CustomBoolField IS NULL', ['backup-1', 'backup-2']],
    // Datetime
    ["StartTime = '2024-01-01T00:00:00Z'", ['order-1']],
    ["StartTime > '2024-01-01T00:00:00Z'", ['order-2', 'backup-1', 'backup-2']],
    ["StartTime >= '2024-01-01T00:00:00Z'", ['order-1', 'order-2', 'backup-1', 'backup-2']],
    ["StartTime < '2024-01-01T07:00:00+07:00'", ['release-1']],
    ["StartTime <= '2024-01-01T07:00:00+07:00'", ['order-1', 'release-1']],
    ["StartTime = '2024-01-03T00:00:00.5Z'", ['backup-2']],
    ["StartTime = '2024-01-03T05:30:00.500+05:30'", ['backup-2']],
    ["StartTime > '2024-01-03T00:00:00.4999Z'", ['backup-2']],
    ["StartTime BETWEEN '2024-01-02T00:00:00Z' AND '2024-01-03T00:00:00Z'", ['order-2', 'backup-1']],
    ["CloseTime != '2024-01-02T01:00:00Z'", ['backup-1', 'backup-2', 'release-1']],
    ["CustomDatetimeField > '2024-05-31T23:59:59.999-00:00'", ['order-1']],
    ["StartTime IN ('2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z')", ['order-1', 'order-2']],
    // KeywordList
    ["BuildIds = 'v2'", ['order-1', 'order-2']],
    ["BuildIds = 'v1'", ['order-1']],
    ["BuildIds != 'v1'", ['order-2']],
    ["BuildIds IN ('v1', 'v9')", ['order-1']],
    ["BuildIds NOT IN ('v1')", ['order-2']],
    ['BuildIds IS NULL', ['backup-1', 'backup-2', 'release-1']],
    ['BuildIds IS NOT NULL', ['order-1', 'order-2']],
    ["TemporalChangeVersion = 'patch-2'", ['release-1']],
    ["TemporalChangeVersion IN ('patch-1')", ['order-1', 'release-1']],
    // Text (simplified full text)
    ["CustomTextField = 'quick'", ['order-1', 'backup-2']],
    ["CustomTextField = 'QUICK brown'", ['order-1', 'backup-2']],
    ["CustomTextField = 'brown quick'", []],
    ["CustomTextField = 'fox'", ['order-1', 'backup-2']],
    ["CustomTextField = 'qui'", []],
    ["CustomTextField != 'fox'", ['order-2']],
    ["CustomTextField = ''", []],
    ['CustomTextField IS NULL', ['backup-1', 'release-1']],
    // AND / OR precedence and parentheses
    [
      "WorkflowType = 'OrderWorkflow' OR WorkflowType = 'BackupWorkflow' AND HistoryLength > 5",
      ['order-1', 'order-2', 'backup-1'],
    ],
    [
      "(WorkflowType = 'OrderWorkflow' OR WorkflowType = 'BackupWorkflow') AND HistoryLength > 5",
      ['order-1', 'order-2', 'backup-1'],
    ],
    [
      "(WorkflowType = 'OrderWorkflow' OR WorkflowType = 'BackupWorkflow') AND HistoryLength < 10",
      ['backup-1', 'backup-2'],
    ],
    [
      "WorkflowType = 'OrderWorkflow' OR WorkflowType = 'BackupWorkflow' AND HistoryLength < 10",
      ['order-1', 'order-2', 'backup-1', 'backup-2'],
    ],
    ["HistoryLength < 10 AND WorkflowType = 'OrderWorkflow' OR WorkflowId = 'release-1'", ['release-1']],
    ["HistoryLength < 10 AND (WorkflowType = 'OrderWorkflow' OR WorkflowId = 'release-1')", []],
    ["((WorkflowId = 'order-1'))", ['order-1']],
    [
      "(TaskQueue = 'orders' AND (CustomBoolField = true OR HistoryLength > 20)) OR (TaskQueue = 'releases')",
      ['order-1', 'order-2', 'release-1'],
    ],
    ['HistoryLength BETWEEN 1 AND 8 AND CustomIntField > 0', ['backup-1']],
    ["WorkflowId = 'order-1' and RunId = 'r1' or ExecutionStatus = 'Failed'", ['order-1', 'backup-1']],
    // ORDER BY does not filter
    ["TaskQueue = 'backups' ORDER BY StartTime DESC", ['backup-1', 'backup-2']],
    ['ORDER BY StartTime', ALL],
  ];

  it.each(cases)('%s', (query, expected) => {
    expect(filter(query)).toEqual(expected);
  });
});

describe('compileVisibilityQuery: ORDER BY', () => {
  const cases: Array<[string, string[]]> = [
    ['ORDER BY StartTime', ['release-1', 'order-1', 'order-2', 'backup-1', 'backup-2']],
    ['order by StartTime asc', ['release-1', 'order-1', 'order-2', 'backup-1', 'backup-2']],
    ['ORDER BY StartTime DESC', ['backup-2', 'backup-1', 'order-2', 'order-1', 'release-1']],
    ['ORDER BY HistoryLength DESC', ['release-1', 'order-2', 'order-1', 'backup-1', 'backup-2']],
    // missing values last in both directions
    ['ORDER BY CloseTime', ['release-1', 'order-2', 'backup-1', 'backup-2', 'order-1']],
    ['ORDER BY CloseTime DESC', ['backup-2', 'backup-1', 'order-2', 'release-1', 'order-1']],
    ['ORDER BY CustomDoubleField ASC', ['release-1', 'order-1', 'order-2', 'backup-1', 'backup-2']],
    ['ORDER BY CustomDoubleField DESC', ['order-2', 'order-1', 'release-1', 'backup-1', 'backup-2']],
    // multi-key
    ['ORDER BY WorkflowType, HistoryLength', ['backup-2', 'backup-1', 'order-1', 'order-2', 'release-1']],
    [
      'ORDER BY WorkflowType DESC, HistoryLength DESC',
      ['release-1', 'order-2', 'order-1', 'backup-1', 'backup-2'],
    ],
    [
      'ORDER BY CustomKeywordField ASC, StartTime DESC',
      ['backup-1', 'order-1', 'order-2', 'release-1', 'backup-2'],
    ],
    [
      'ORDER BY CustomBoolField DESC, WorkflowId',
      ['order-1', 'release-1', 'order-2', 'backup-1', 'backup-2'],
    ],
    [
      'ORDER BY CustomBoolField, `WorkflowId` DESC',
      ['order-2', 'release-1', 'order-1', 'backup-2', 'backup-1'],
    ],
    [
      "TaskQueue != 'releases' ORDER BY TaskQueue, WorkflowId DESC",
      ['backup-2', 'backup-1', 'order-2', 'order-1'],
    ],
    ['ORDER BY ExecutionTime', ALL], // missing everywhere: all ties, default order kept
  ];

  it.each(cases)('%s', (query, expected) => {
    expect(sorted(query)).toEqual(expected);
  });

  it('reports whether the query has an ORDER BY', () => {
    expect(compileVisibilityQuery('', typeOf).hasOrderBy).toBe(false);
    expect(compileVisibilityQuery("WorkflowId = 'a'", typeOf).hasOrderBy).toBe(false);
    expect(compileVisibilityQuery('ORDER BY StartTime', typeOf).hasOrderBy).toBe(true);
    expect(compileVisibilityQuery("WorkflowId = 'a' ORDER BY RunId DESC", typeOf).hasOrderBy).toBe(true);
  });

  it('compare returns 0 without ORDER BY', () => {
    const compiled = compileVisibilityQuery('HistoryLength > 1', typeOf);
    const [a, b] = RECORDS;
    expect(a && b && compiled.compare(a, b)).toBe(0);
  });
});

describe('compileVisibilityQuery: malformed queries', () => {
  const cases: Array<[string, RegExp]> = [
    ["Foo = 'x'", /unknown search attribute 'Foo'/],
    ["workflowid = 'x'", /unknown search attribute 'workflowid'/],
    ["`Nope` = 'x'", /unknown search attribute 'Nope'/],
    ['ORDER BY Bar', /unknown search attribute 'Bar'/],
    ["WorkflowId LIKE 'order%'", /unsupported operator in visibility query: 'LIKE'/],
    ["WorkflowId NOT LIKE 'order%'", /unsupported operator in visibility query: 'NOT LIKE'/],
    ["WorkflowId == 'x'", /unsupported operator in visibility query: '=='/],
    ["WorkflowType = 'x' GROUP BY WorkflowType", /unsupported clause in visibility query: 'GROUP BY'/],
    ["WorkflowType = 'x' LIMIT 10", /unsupported clause in visibility query: 'LIMIT'/],
    ["WorkflowType = 'x' ORDER BY StartTime LIMIT 10", /unsupported clause in visibility query: 'LIMIT'/],
    ['SELECT WorkflowId', /unsupported clause in visibility query: 'SELECT'/],
    ['SELECT * FROM executions', /unsupported character in visibility query: '\*'/],
    ["WorkflowId = 'x';", /unsupported character in visibility query: ';'/],
    ["WorkflowId = 'x' && RunId = 'y'", /unsupported operator in visibility query: '&&'/],
    ['HistoryLength + 1 > 2', /unsupported character in visibility query: '\+'/],
    ["lower(WorkflowId) = 'x'", /unsupported function in visibility query: 'lower'/],
    ['StartTime > NOW()', /unsupported function in visibility query: 'NOW'/],
    ["NOT WorkflowId = 'x'", /unsupported use of NOT in visibility query/],
    ["WorkflowId NOT = 'x'", /unsupported use of NOT in visibility query/],
    ["(WorkflowId = 'x'", /unbalanced parentheses.*missing '\)' for '\(' at position 1/],
    [
      "WorkflowId = 'x' AND (RunId = 'y' OR (RunId = 'z')",
      /unbalanced parentheses.*missing '\)'.*position 22/,
    ],
    ["WorkflowId = 'x')", /unbalanced parentheses.*unexpected '\)' at position 17/],
    ["WorkflowId IN ('a', 'b'", /unbalanced parentheses.*missing '\)'/],
    ['()', /empty parentheses/],
    ["WorkflowId = 'x' RunId = 'y'", /unexpected 'RunId' at position 18/],
    ["WorkflowId = 'x' 'y'", /unexpected string 'y'/],
    ["WorkflowId = 'x' AND", /expected a search attribute name.*end of query/],
    ['WorkflowId', /expected an operator after 'WorkflowId'/],
    ['WorkflowId =', /expected a literal value after = for 'WorkflowId', got end of query/],
    ['WorkflowId = RunId', /expected a literal value.*comparing search attributes/],
    ['WorkflowId = NULL', /use 'WorkflowId IS NULL'/],
    ['WorkflowId IS TRUE', /expected NULL after IS/],
    ['WorkflowId IN ()', /IN list for 'WorkflowId'.*is empty/],
    ["WorkflowId IN 'a'", /expected '\(' after IN/],
    ["WorkflowId IN ('a' 'b')", /expected ',' or '\)' in IN list/],
    ["WorkflowId BETWEEN 'a' OR 'b'", /expected AND between the bounds of BETWEEN/],
    ["WorkflowId = 'unterminated", /unterminated string literal starting at position 14/],
    ['`WorkflowId = 1', /unterminated quoted identifier/],
    ["`` = 'x'", /empty quoted identifier/],
    ['HistoryLength = 12abc', /invalid number literal '12abc'/],
    ['HistoryLength > 1e999', /number literal 1e999 .*out of range/],
    [
      "HistoryLength STARTS_WITH '1'",
      /operator 'STARTS_WITH' is not supported for Int search attribute 'HistoryLength'/,
    ],
    ['CustomBoolField < true', /operator '<' is not supported for Bool search attribute 'CustomBoolField'/],
    ["BuildIds STARTS_WITH 'v'", /operator 'STARTS_WITH' is not supported for KeywordList/],
    ["BuildIds > 'v'", /operator '>' is not supported for KeywordList/],
    [
      "CustomTextField IN ('a')",
      /operator 'IN' is not supported for Text search attribute 'CustomTextField'/,
    ],
    ["CustomTextField BETWEEN 'a' AND 'b'", /operator 'BETWEEN' is not supported for Text/],
    [
      "StartTime > 'yesterday'",
      /invalid value for Datetime search attribute 'StartTime'.*RFC3339.*'yesterday'/,
    ],
    ["StartTime > '2024-02-30T00:00:00Z'", /invalid value for Datetime search attribute 'StartTime'/],
    ["CloseTime < '2024-01-02'", /invalid value for Datetime search attribute 'CloseTime'/],
    ["CustomDatetimeField = '2024-01-02T25:00:00Z'", /Datetime search attribute 'CustomDatetimeField'/],
    ['StartTime > 1704067200000', /invalid value for Datetime search attribute 'StartTime'.*number/],
    ['HistoryLength = 1.5', /invalid value for Int search attribute 'HistoryLength'.*integer.*1\.5/],
    ["HistoryLength = 'ten'", /invalid value for Int search attribute 'HistoryLength'/],
    ["CustomDoubleField = 'abc'", /invalid value for Double search attribute 'CustomDoubleField'/],
    ['CustomBoolField = 1', /invalid value for Bool search attribute 'CustomBoolField'.*true or false/],
    ['WorkflowId = 42', /invalid value for Keyword search attribute 'WorkflowId'.*string literal.*42/],
    ['WorkflowId IN (true)', /invalid value for Keyword search attribute 'WorkflowId'/],
    ['ORDER BY CustomTextField', /cannot ORDER BY Text search attribute 'CustomTextField'/],
    ['ORDER BY BuildIds DESC', /cannot ORDER BY KeywordList search attribute 'BuildIds'/],
    ['ORDER StartTime', /expected BY after ORDER/],
    ["ORDER BY StartTime WorkflowId = 'x'", /unexpected 'WorkflowId'.*after ORDER BY/],
    ["ORDER BY StartTime AND WorkflowId = 'x'", /unexpected 'AND'.*after ORDER BY/],
    ['ORDER BY StartTime,', /expected a search attribute name in ORDER BY/],
    ["(WorkflowId = 'x' ORDER BY StartTime)", /ORDER BY at position 19 must come last/],
    ["AND WorkflowId = 'x'", /expected a search attribute name.*keyword 'AND'/],
    ["WorkflowId = 'x' AND OR RunId = 'y'", /keyword 'OR'/],
    ['WorkflowId = -', /unsupported character in visibility query: '-'/],
    ['WorkflowId = \u0001', /unsupported character in visibility query: 'U\+0001'/],
    ['WorkflowId = \u00e9', /unsupported character in visibility query: '\u00e9'/],
  ];

  it.each(cases)('%s', (query, pattern) => {
    expect(errorOf(query).message).toMatch(pattern);
  });

  it('limits the query to 8 KiB', () => {
    const base = "WorkflowId = 'x'";
    const ok = base + ' '.repeat(MAX_VISIBILITY_QUERY_BYTES - base.length);
    expect(() => compileVisibilityQuery(ok, typeOf)).not.toThrow();
    expect(errorOf(ok + ' ').message).toMatch(/visibility query is too long: 8193 bytes \(limit 8192\)/);
    // counted in UTF-8 bytes, not characters
    const wide = `WorkflowId = '${'\u00e9'.repeat(4100)}'`;
    expect(wide.length).toBeLessThan(MAX_VISIBILITY_QUERY_BYTES);
    expect(errorOf(wide).message).toMatch(/too long/);
  });

  it('limits nesting instead of overflowing the stack', () => {
    expect(errorOf('('.repeat(4000)).message).toMatch(/nested too deeply/);
    const deep = `${'('.repeat(100)}WorkflowId = 'order-1'${')'.repeat(100)}`;
    expect(filter(deep)).toEqual(['order-1']);
    expect(errorOf(`(${deep})`).message).toMatch(/nested too deeply/);
  });

  it('handles long flat chains without recursion', () => {
    const chain = Array.from({ length: 300 }, (_, i) => `HistoryLength = ${i}`).join(' OR ');
    expect(filter(chain)).toEqual(['order-1', 'order-2', 'backup-1', 'backup-2', 'release-1']);
    const list = `HistoryLength IN (${Array.from({ length: 1000 }, (_, i) => i * 2 + 1).join(',')})`;
    expect(filter(list)).toEqual(['order-2', 'backup-1', 'backup-2']);
  });

  it('rejects a type it does not know from typeOf', () => {
    const lookup = (name: string) => (name === 'Weird' ? ('Geo' as SearchAttributeType) : undefined);
    expect(errorOf("Weird = 'x'", lookup).message).toMatch(
      /search attribute 'Weird' has unsupported type 'Geo'/,
    );
  });

  it('rejects a non-string query', () => {
    expect(errorOf(undefined as unknown as string).message).toMatch(/must be a string/);
  });

  it('throws only VisibilityQueryError on arbitrary input', () => {
    const pieces = [
      "WorkflowId = 'order-1'",
      'HistoryLength > 5',
      "BuildIds IN ('v1')",
      "CustomTextField = 'fox'",
      'StartTime IS NOT NULL',
      'AND',
      'OR',
      'WorkflowId',
      'HistoryLength',
      'StartTime',
      'BuildIds',
      'CustomTextField',
      'CustomBoolField',
      '`CustomKeywordField`',
      '=',
      '!=',
      '<',
      '>=',
      'IN',
      'NOT',
      'BETWEEN',
      'AND',
      'OR',
      'IS',
      'NULL',
      'STARTS_WITH',
      'ORDER',
      'BY',
      'DESC',
      '(',
      ')',
      ',',
      "'x'",
      "'2024-01-01T00:00:00Z'",
      '42',
      '-1.5',
      'true',
      '"',
      "'",
      '`',
      '*',
      'LIKE',
    ];
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor(seed / 65536) % n;
    };
    let compiled = 0;
    for (let round = 0; round < 3000; round++) {
      const count = 1 + random(9);
      const query = Array.from({ length: count }, () => pieces[random(pieces.length)]).join(' ');
      try {
        const q = compileVisibilityQuery(query, typeOf);
        compiled++;
        for (const r of RECORDS) expect(typeof q.matches(r)).toBe('boolean');
      } catch (error) {
        expect(error, query).toBeInstanceOf(VisibilityQueryError);
      }
    }
    expect(compiled).toBeGreaterThan(0);
  });
});

describe('record values', () => {
  it('tolerates values of the wrong JS type by treating them as missing, with lenient numbers and dates', () => {
    const odd = record({
      WorkflowId: 7,
      HistoryLength: '12',
      StartTime: '2024-01-01T00:00:00Z',
      BuildIds: 'v1',
      CustomBoolField: 'yes',
      CustomDoubleField: Number.NaN,
    });
    const matches = (query: string): boolean => compileVisibilityQuery(query, typeOf).matches(odd);
    expect(matches("WorkflowId = '7'")).toBe(false);
    expect(matches('WorkflowId IS NULL')).toBe(true);
    expect(matches('HistoryLength = 12')).toBe(true);
    expect(matches("StartTime = '2024-01-01T00:00:00Z'")).toBe(true);
    expect(matches("BuildIds = 'v1'")).toBe(true);
    expect(matches('CustomBoolField IS NULL')).toBe(true);
    expect(matches('CustomDoubleField IS NULL')).toBe(true);
  });

  it('parses RFC3339 timestamps', () => {
    expect(parseRfc3339('2024-01-02T03:04:05Z')).toBe(Date.UTC(2024, 0, 2, 3, 4, 5));
    expect(parseRfc3339('2024-01-02t03:04:05.123+07:00')).toBe(Date.UTC(2024, 0, 1, 20, 4, 5, 123));
    expect(parseRfc3339('2024-02-29T00:00:00-01:30')).toBe(Date.UTC(2024, 1, 29, 1, 30));
    expect(parseRfc3339('0050-01-01T00:00:00Z')).toBe(-60589296000000);
    expect(parseRfc3339('2023-02-29T00:00:00Z')).toBeUndefined();
    expect(parseRfc3339('2024-01-02T03:04:05')).toBeUndefined();
    expect(parseRfc3339('2024-01-02T03:04:05+24:00')).toBeUndefined();
  });
});
