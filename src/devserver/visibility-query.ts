/**
 * The Temporal visibility "list filter" language (the SQL-like subset accepted by ListWorkflowExecutions and
 * CountWorkflowExecutions), compiled into a predicate and an ORDER BY comparator for an in-memory store.
 *
 * Supported: `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `[NOT] IN (...)`, `[NOT] BETWEEN a AND b`,
 * `[NOT] STARTS_WITH 'prefix'`, `IS [NOT] NULL`, `AND`, `OR`, parentheses and `ORDER BY a [ASC|DESC], ...`.
 * A comparison whose attribute is missing on an execution is false (SQL's NULL semantics), whatever the
 * operator, negated ones included; only `IS NULL` matches a missing value.
 *
 * Pure: no I/O, no imports. Every problem with the query text is reported as a VisibilityQueryError.
 */

export type SearchAttributeType = 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

/** A value of an attribute on one execution: Datetime as epoch milliseconds (number); KeywordList as string[]; missing = undefined/null. */
export type VisibilityValue = string | number | boolean | string[] | null | undefined;

export interface VisibilityRecord {
  get(name: string): VisibilityValue;
}

/** A query the dev server cannot accept; the message says exactly what is wrong or unsupported. */
export class VisibilityQueryError extends Error {
  override readonly name = 'VisibilityQueryError';
}

export interface CompiledVisibilityQuery {
  matches(record: VisibilityRecord): boolean;
  /** Sort comparator from ORDER BY; when the query has no ORDER BY, returns 0 (caller applies default order). */
  compare(a: VisibilityRecord, b: VisibilityRecord): number;
  readonly hasOrderBy: boolean;
}

export const SYSTEM_SEARCH_ATTRIBUTES: Readonly<Record<string, SearchAttributeType>> = Object.freeze({
  WorkflowId: 'Keyword',
  RunId: 'Keyword',
  WorkflowType: 'Keyword',
  ExecutionStatus: 'Keyword',
  StartTime: 'Datetime',
  CloseTime: 'Datetime',
  ExecutionTime: 'Datetime',
  TaskQueue: 'Keyword',
  HistoryLength: 'Int',
  ParentWorkflowId: 'Keyword',
  RootWorkflowId: 'Keyword',
  TemporalChangeVersion: 'KeywordList',
  BuildIds: 'KeywordList',
});

/** Longest accepted query, in UTF-8 bytes. */
export const MAX_VISIBILITY_QUERY_BYTES = 8192;
/** Deepest accepted nesting of parentheses. */
export const MAX_VISIBILITY_QUERY_NESTING = 100;

// ---------------------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------------------

type TokenKind = 'word' | 'quotedIdent' | 'string' | 'number' | 'op' | 'lparen' | 'rparen' | 'comma' | 'eof';

interface Token {
  readonly kind: TokenKind;
  /** The source text of the token (for strings and quoted identifiers: the decoded content). */
  readonly text: string;
  /** 1-based position of the token's first character. */
  readonly pos: number;
}

const COMPARISON_OPERATORS = new Set(['=', '!=', '<>', '<', '<=', '>', '>=']);

function fail(message: string): never {
  throw new VisibilityQueryError(message);
}

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

function isWordStart(ch: string | undefined): boolean {
  return ch !== undefined && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch === '_');
}

function isWordPart(ch: string | undefined): boolean {
  return isWordStart(ch) || isDigit(ch);
}

/** Show a piece of the query in a message without letting a huge or odd token swamp it. */
function quote(text: string): string {
  const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return `'${shown}'`;
}

const STRING_ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '0': '\0',
  b: '\b',
  Z: '\x1a',
};

function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = query.length;
  while (i < n) {
    const ch = query.charAt(i);
    const pos = i + 1;
    if (isSpace(ch)) {
      i++;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === ',') {
      tokens.push({ kind: ch === '(' ? 'lparen' : ch === ')' ? 'rparen' : 'comma', text: ch, pos });
      i++;
      continue;
    }
    if (ch === "'" || ch === '"') {
      let value = '';
      let j = i + 1;
      let closed = false;
      while (j < n) {
        const c = query.charAt(j);
        if (c === '\\') {
          if (j + 1 >= n) break;
          const e = query.charAt(j + 1);
          value += STRING_ESCAPES[e] ?? e;
          j += 2;
        } else if (c === ch) {
          if (query.charAt(j + 1) === ch) {
            value += ch;
            j += 2;
          } else {
            closed = true;
            j++;
            break;
          }
        } else {
          value += c;
          j++;
        }
      }
      if (!closed) fail(`unterminated string literal starting at position ${pos} in visibility query`);
      tokens.push({ kind: 'string', text: value, pos });
      i = j;
      continue;
    }
    if (ch === '`') {
      let name = '';
      let j = i + 1;
      let closed = false;
      while (j < n) {
        const c = query.charAt(j);
        if (c === '`') {
          if (query.charAt(j + 1) === '`') {
            name += '`';
            j += 2;
          } else {
            closed = true;
            j++;
            break;
          }
        } else {
          name += c;
          j++;
        }
      }
      if (!closed) fail(`unterminated quoted identifier starting at position ${pos} in visibility query`);
      if (name === '') fail(`empty quoted identifier at position ${pos} in visibility query`);
      tokens.push({ kind: 'quotedIdent', text: name, pos });
      i = j;
      continue;
    }
    if (isDigit(ch) || (ch === '-' && isDigit(query[i + 1])) || (ch === '.' && isDigit(query[i + 1]))) {
      let j = ch === '-' ? i + 1 : i;
      while (isDigit(query[j])) j++;
      if (query[j] === '.') {
        j++;
        while (isDigit(query[j])) j++;
      }
      if (query[j] === 'e' || query[j] === 'E') {
        let k = j + 1;
        if (query[k] === '+' || query[k] === '-') k++;
        if (isDigit(query[k])) {
          while (isDigit(query[k])) k++;
          j = k;
        }
      }
      if (isWordPart(query[j]) || query[j] === '.') {
        let k = j;
        while (isWordPart(query[k]) || query[k] === '.') k++;
        fail(`invalid number literal ${quote(query.slice(i, k))} at position ${pos} in visibility query`);
      }
      tokens.push({ kind: 'number', text: query.slice(i, j), pos });
      i = j;
      continue;
    }
    if (isWordStart(ch)) {
      let j = i + 1;
      while (isWordPart(query[j])) j++;
      tokens.push({ kind: 'word', text: query.slice(i, j), pos });
      i = j;
      continue;
    }
    const two = query.slice(i, i + 2);
    if (two === '!=' || two === '<>' || two === '<=' || two === '>=') {
      tokens.push({ kind: 'op', text: two, pos });
      i += 2;
      continue;
    }
    if (two === '==' || two === '&&' || two === '||' || two === '<<' || two === '>>' || two === '->') {
      fail(`unsupported operator in visibility query: ${quote(two)} at position ${pos}`);
    }
    if (ch === '=' || ch === '<' || ch === '>') {
      tokens.push({ kind: 'op', text: ch, pos });
      i++;
      continue;
    }
    const cp = query.codePointAt(i) ?? 0;
    const shown =
      cp < 0x20 || cp === 0x7f
        ? `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`
        : String.fromCodePoint(cp);
    fail(`unsupported character in visibility query: ${quote(shown)} at position ${pos}`);
  }
  tokens.push({ kind: 'eof', text: '', pos: n + 1 });
  return tokens;
}

// ---------------------------------------------------------------------------------------------------------
// Literal values and record values
// ---------------------------------------------------------------------------------------------------------

type Scalar = string | number | boolean;
type Literal =
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: number; text: string; pos: number }
  | { kind: 'bool'; value: boolean; pos: number };

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Epoch milliseconds (possibly fractional, for sub-millisecond literals) of an RFC3339 timestamp, or undefined. */
export function parseRfc3339(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const num = (s: string | undefined): number => (s === undefined ? 0 : Number(s));
  const year = num(m[1]);
  const month = num(m[2]);
  const day = num(m[3]);
  const hour = num(m[4]);
  const minute = num(m[5]);
  const second = num(m[6]);
  if (month < 1 || month > 12) return undefined;
  const monthDays = month === 2 && isLeapYear(year) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 31);
  if (day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59) return undefined;
  // Groups: 7 fraction digits, 8 'Z', 9 offset sign, 10 offset hours, 11 offset minutes.
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const offH = num(m[10]);
    const offM = num(m[11]);
    if (offH > 23 || offM > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (offH * 60 + offM);
  }
  const frac = m[7] ?? '';
  const wholeMs = Number(frac.padEnd(3, '0').slice(0, 3));
  const subMs = frac.length > 3 ? Number(`0.${frac.slice(3)}`) : 0;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, wholeMs);
  return date.getTime() - offsetMinutes * 60_000 + subMs;
}

function describeLiteral(lit: Literal): string {
  switch (lit.kind) {
    case 'string':
      return `string ${quote(lit.value)}`;
    case 'number':
      return `number ${lit.text}`;
    case 'bool':
      return String(lit.value);
  }
}

const INTEGER_STRING = /^[+-]?\d+$/;
const DECIMAL_STRING = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Convert a literal from the query to the comparable value for an attribute of the given type. */
function coerceLiteral(lit: Literal, attr: string, type: SearchAttributeType): Scalar {
  const bad = (expected: string): never =>
    fail(
      `invalid value for ${type} search attribute '${attr}' at position ${lit.pos}: expected ${expected}, got ${describeLiteral(lit)}`,
    );
  switch (type) {
    case 'Keyword':
    case 'Text':
    case 'KeywordList':
      return lit.kind === 'string' ? lit.value : bad('a string literal');
    case 'Int': {
      if (lit.kind === 'number') return Number.isInteger(lit.value) ? lit.value : bad('an integer');
      if (lit.kind === 'string' && INTEGER_STRING.test(lit.value.trim())) return Number(lit.value.trim());
      return bad('an integer');
    }
    case 'Double': {
      if (lit.kind === 'number') return lit.value;
      if (lit.kind === 'string' && DECIMAL_STRING.test(lit.value.trim())) {
        const value = Number(lit.value.trim());
        if (Number.isFinite(value)) return value;
      }
      return bad('a number');
    }
    case 'Bool': {
      if (lit.kind === 'bool') return lit.value;
      if (lit.kind === 'string') {
        const lower = lit.value.trim().toLowerCase();
        if (lower === 'true' || lower === 'false') return lower === 'true';
      }
      return bad('true or false');
    }
    case 'Datetime': {
      if (lit.kind === 'string') {
        const ms = parseRfc3339(lit.value.trim());
        if (ms !== undefined) return ms;
      }
      return bad("an RFC3339 datetime string such as '2024-01-02T03:04:05Z'");
    }
  }
}

/** The value of a scalar-typed attribute on a record, normalised to the type; undefined when missing or unusable. */
function scalarOf(record: VisibilityRecord, attr: string, type: SearchAttributeType): Scalar | undefined {
  const raw = record.get(attr);
  if (raw === undefined || raw === null) return undefined;
  switch (type) {
    case 'Keyword':
    case 'Text':
      return typeof raw === 'string' ? raw : undefined;
    case 'Int':
    case 'Double':
      if (typeof raw === 'number') return Number.isNaN(raw) ? undefined : raw;
      if (typeof raw === 'string' && DECIMAL_STRING.test(raw.trim())) return Number(raw.trim());
      return undefined;
    case 'Bool':
      return typeof raw === 'boolean' ? raw : undefined;
    case 'Datetime':
      if (typeof raw === 'number') return Number.isNaN(raw) ? undefined : raw;
      if (typeof raw === 'string') return parseRfc3339(raw.trim());
      return undefined;
    case 'KeywordList':
      return undefined;
  }
}

/** The value of a KeywordList attribute; a missing or empty list is undefined. A lone string counts as a one-item list. */
function listOf(record: VisibilityRecord, attr: string): string[] | undefined {
  const raw = record.get(attr);
  if (typeof raw === 'string') return [raw];
  if (!Array.isArray(raw)) return undefined;
  const items = raw.filter((item): item is string => typeof item === 'string');
  return items.length === 0 ? undefined : items;
}

function compareScalars(a: Scalar, b: Scalar): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Lower-cased words of a text, for the simplified full-text match. */
function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [];
}

/** True when the words of the phrase occur consecutively among the words of the text. */
function containsPhrase(textWords: readonly string[], phraseWords: readonly string[]): boolean {
  if (phraseWords.length === 0) return false;
  const last = textWords.length - phraseWords.length;
  for (let start = 0; start <= last; start++) {
    let all = true;
    for (let k = 0; k < phraseWords.length; k++) {
      if (textWords[start + k] !== phraseWords[k]) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Parser / compiler
// ---------------------------------------------------------------------------------------------------------

type Predicate = (record: VisibilityRecord) => boolean;

type Operator =
  | '='
  | '!='
  | '<'
  | '<='
  | '>'
  | '>='
  | 'IN'
  | 'NOT IN'
  | 'BETWEEN'
  | 'NOT BETWEEN'
  | 'STARTS_WITH'
  | 'NOT STARTS_WITH';

const ORDERING: readonly Operator[] = [
  '=',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  'IN',
  'NOT IN',
  'BETWEEN',
  'NOT BETWEEN',
];

/** Operators allowed for each type, besides IS [NOT] NULL which every type allows. */
const OPERATORS_BY_TYPE: Readonly<Record<SearchAttributeType, ReadonlySet<Operator>>> = {
  Keyword: new Set<Operator>([...ORDERING, 'STARTS_WITH', 'NOT STARTS_WITH']),
  Text: new Set<Operator>(['=', '!=']),
  Int: new Set<Operator>(ORDERING),
  Double: new Set<Operator>(ORDERING),
  Datetime: new Set<Operator>(ORDERING),
  Bool: new Set<Operator>(['=', '!=', 'IN', 'NOT IN']),
  KeywordList: new Set<Operator>(['=', '!=', 'IN', 'NOT IN']),
};

const SORTABLE_TYPES: ReadonlySet<string> = words('Keyword Int Double Bool Datetime');

const VALID_TYPES: ReadonlySet<string> = words('Keyword Text Int Double Bool Datetime KeywordList');

/** Words with a meaning in this grammar; unquoted, they are never attribute names. */
const GRAMMAR_KEYWORDS = words('AND OR NOT IN IS NULL BETWEEN STARTS_WITH ORDER BY ASC DESC TRUE FALSE');

/** SQL operators that this language does not have. */
const UNSUPPORTED_OPERATOR_WORDS = words(
  'LIKE ILIKE REGEXP RLIKE SIMILAR GLOB MATCH MATCHES CONTAINS ESCAPE DIV MOD XOR COLLATE SOUNDS ENDS_WITH',
);

/** SQL clauses and statement words that this language does not have. */
const UNSUPPORTED_CLAUSE_WORDS = words(
  'SELECT FROM WHERE GROUP HAVING LIMIT OFFSET UNION JOIN INTERSECT EXCEPT WINDOW FETCH FOR INTO DISTINCT ' +
    'CASE WHEN EXISTS INSERT UPDATE DELETE DROP CREATE ALTER SET WITH AS ALL ANY SOME',
);

function words(list: string): ReadonlySet<string> {
  return new Set(list.split(/\s+/));
}

interface OrderKey {
  readonly attr: string;
  readonly type: SearchAttributeType;
  readonly descending: boolean;
}

class Parser {
  private index = 0;
  /** Positions of the parentheses that are open at the current point of the parse. */
  private readonly openParens: number[] = [];

  constructor(
    private readonly tokens: readonly Token[],
    private readonly typeOf: (name: string) => SearchAttributeType | undefined,
  ) {}

  private peek(offset = 0): Token {
    return (
      this.tokens[Math.min(this.index + offset, this.tokens.length - 1)] ?? { kind: 'eof', text: '', pos: 0 }
    );
  }

  private next(): Token {
    const token = this.peek();
    if (this.index < this.tokens.length - 1) this.index++;
    return token;
  }

  /** The upper-cased word if the token is an unquoted word, else undefined. */
  private static keyword(token: Token): string | undefined {
    return token.kind === 'word' ? token.text.toUpperCase() : undefined;
  }

  private isKeyword(word: string, offset = 0): boolean {
    return Parser.keyword(this.peek(offset)) === word;
  }

  private static describe(token: Token): string {
    switch (token.kind) {
      case 'eof':
        return 'end of query';
      case 'string':
        return `string ${quote(token.text)} at position ${token.pos}`;
      case 'quotedIdent':
        return `\`${token.text}\` at position ${token.pos}`;
      default:
        return `${quote(token.text)} at position ${token.pos}`;
    }
  }

  private expectKeyword(word: string, context: string): void {
    const token = this.next();
    if (Parser.keyword(token) !== word)
      fail(`expected ${word} ${context}, got ${Parser.describe(token)} in visibility query`);
  }

  parse(): { where: Predicate | undefined; orderBy: OrderKey[] } {
    let where: Predicate | undefined;
    if (this.peek().kind !== 'eof' && !this.isKeyword('ORDER')) where = this.parseOr();
    const orderBy: OrderKey[] = [];
    if (this.isKeyword('ORDER')) {
      this.next();
      this.expectKeyword('BY', 'after ORDER');
      orderBy.push(this.parseOrderKey());
      while (this.peek().kind === 'comma') {
        this.next();
        orderBy.push(this.parseOrderKey());
      }
    }
    const token = this.peek();
    if (token.kind !== 'eof')
      this.unexpected(
        token,
        orderBy.length > 0
          ? "after ORDER BY (expected ',' or end of query)"
          : '(expected AND, OR, ORDER BY or end of query)',
      );
    return { where, orderBy };
  }

  private unexpected(token: Token, hint: string): never {
    const word = Parser.keyword(token);
    if (token.kind === 'rparen')
      fail(`unbalanced parentheses in visibility query: unexpected ')' at position ${token.pos}`);
    if (word === 'GROUP' && this.isKeyword('BY', 1))
      fail(`unsupported clause in visibility query: 'GROUP BY' at position ${token.pos}`);
    if (word !== undefined && UNSUPPORTED_CLAUSE_WORDS.has(word))
      fail(`unsupported clause in visibility query: ${quote(token.text)} at position ${token.pos}`);
    if (word !== undefined && UNSUPPORTED_OPERATOR_WORDS.has(word))
      fail(`unsupported operator in visibility query: ${quote(token.text)} at position ${token.pos}`);
    if (word === 'NOT') this.bareNot(token);
    if (word === 'ORDER')
      fail(`ORDER BY at position ${token.pos} must come last in visibility query, after the whole condition`);
    fail(`unexpected ${Parser.describe(token)} in visibility query ${hint}`);
  }

  private bareNot(token: Token): never {
    fail(
      `unsupported use of NOT in visibility query: 'NOT' at position ${token.pos} (NOT is only allowed in NOT IN, NOT BETWEEN, NOT STARTS_WITH and IS NOT NULL)`,
    );
  }

  private parseOr(): Predicate {
    const items = [this.parseAnd()];
    while (this.isKeyword('OR')) {
      this.next();
      items.push(this.parseAnd());
    }
    if (items.length === 1 && items[0]) return items[0];
    return (record) => items.some((item) => item(record));
  }

  private parseAnd(): Predicate {
    const items = [this.parsePrimary()];
    while (this.isKeyword('AND')) {
      this.next();
      items.push(this.parsePrimary());
    }
    if (items.length === 1 && items[0]) return items[0];
    return (record) => items.every((item) => item(record));
  }

  private parsePrimary(): Predicate {
    const token = this.peek();
    if (token.kind !== 'lparen') return this.parsePredicate();
    this.next();
    if (this.peek().kind === 'rparen') fail(`empty parentheses at position ${token.pos} in visibility query`);
    if (this.openParens.length >= MAX_VISIBILITY_QUERY_NESTING) {
      fail(
        `visibility query is nested too deeply: more than ${MAX_VISIBILITY_QUERY_NESTING} levels of parentheses`,
      );
    }
    this.openParens.push(token.pos);
    const inner = this.parseOr();
    const close = this.next();
    if (close.kind !== 'rparen') {
      if (close.kind === 'eof') this.missingCloseParen();
      this.unexpected(close, "inside parentheses (expected AND, OR or ')')");
    }
    this.openParens.pop();
    return inner;
  }

  /** At the end of the query: report the innermost unclosed parenthesis, if any. */
  private missingCloseParen(): void {
    const open = this.openParens[this.openParens.length - 1];
    if (open !== undefined)
      fail(`unbalanced parentheses in visibility query: missing ')' for '(' at position ${open}`);
  }

  /** Read an attribute name and check that it is known. */
  private parseAttribute(context: string): { attr: string; type: SearchAttributeType; pos: number } {
    const token = this.next();
    let attr: string;
    if (token.kind === 'quotedIdent') {
      attr = token.text;
    } else if (token.kind === 'word') {
      const word = token.text.toUpperCase();
      if (this.peek().kind === 'lparen')
        fail(`unsupported function in visibility query: ${quote(token.text)} at position ${token.pos}`);
      if (word === 'NOT') this.bareNot(token);
      if (GRAMMAR_KEYWORDS.has(word))
        fail(
          `expected a search attribute name ${context}, got keyword ${quote(token.text)} at position ${token.pos} in visibility query`,
        );
      attr = token.text;
      if (this.lookup(attr) === undefined) {
        if (word === 'GROUP' && this.isKeyword('BY'))
          fail(`unsupported clause in visibility query: 'GROUP BY' at position ${token.pos}`);
        if (UNSUPPORTED_CLAUSE_WORDS.has(word))
          fail(`unsupported clause in visibility query: ${quote(token.text)} at position ${token.pos}`);
      }
    } else if (token.kind === 'eof') {
      this.missingCloseParen();
      fail(`expected a search attribute name ${context}, got end of query in visibility query`);
    } else if (token.kind === 'rparen') {
      fail(`unbalanced parentheses in visibility query: unexpected ')' at position ${token.pos}`);
    } else {
      fail(`expected a search attribute name ${context}, got ${Parser.describe(token)} in visibility query`);
    }
    const type = this.lookup(attr);
    if (type === undefined)
      fail(`unknown search attribute '${attr}' at position ${token.pos} in visibility query`);
    return { attr, type, pos: token.pos };
  }

  private lookup(attr: string): SearchAttributeType | undefined {
    const type = this.typeOf(attr);
    if (type === undefined || type === null) return undefined;
    if (!VALID_TYPES.has(type))
      fail(`search attribute '${attr}' has unsupported type ${quote(String(type))}`);
    return type;
  }

  private parseLiteral(attr: string, operator: string): Literal {
    const token = this.next();
    switch (token.kind) {
      case 'string':
        return { kind: 'string', value: token.text, pos: token.pos };
      case 'number': {
        const value = Number(token.text);
        if (!Number.isFinite(value))
          fail(`number literal ${token.text} at position ${token.pos} is out of range in visibility query`);
        return { kind: 'number', value, text: token.text, pos: token.pos };
      }
      case 'word': {
        const word = token.text.toUpperCase();
        if (word === 'TRUE' || word === 'FALSE')
          return { kind: 'bool', value: word === 'TRUE', pos: token.pos };
        if (this.peek().kind === 'lparen') {
          return fail(
            `unsupported function in visibility query: ${quote(token.text)} at position ${token.pos}`,
          );
        }
        if (word === 'NULL') {
          return fail(
            `comparison with NULL at position ${token.pos} in visibility query: use '${attr} IS NULL' or '${attr} IS NOT NULL'`,
          );
        }
        return fail(
          `expected a literal value after ${operator} for '${attr}', got ${Parser.describe(token)} in visibility query (comparing search attributes with each other is unsupported; quote strings)`,
        );
      }
      case 'quotedIdent':
        return fail(
          `expected a literal value after ${operator} for '${attr}', got ${Parser.describe(token)} in visibility query (comparing search attributes with each other is unsupported)`,
        );
      default:
        return fail(
          `expected a literal value after ${operator} for '${attr}', got ${Parser.describe(token)} in visibility query`,
        );
    }
  }

  private parseValue(attr: string, type: SearchAttributeType, operator: string): Scalar {
    return coerceLiteral(this.parseLiteral(attr, operator), attr, type);
  }

  private parsePredicate(): Predicate {
    const { attr, type, pos } = this.parseAttribute('at the start of a condition');
    const opToken = this.next();
    const word = Parser.keyword(opToken);

    if (word === 'IS') {
      let negated = false;
      if (this.isKeyword('NOT')) {
        this.next();
        negated = true;
      }
      this.expectKeyword('NULL', negated ? 'after IS NOT' : 'after IS');
      if (type === 'KeywordList') return (record) => (listOf(record, attr) === undefined) !== negated;
      return (record) => (scalarOf(record, attr, type) === undefined) !== negated;
    }

    let operator: Operator;
    if (opToken.kind === 'op' && COMPARISON_OPERATORS.has(opToken.text)) {
      operator = opToken.text === '<>' ? '!=' : (opToken.text as Operator);
    } else if (word === 'IN' || word === 'BETWEEN' || word === 'STARTS_WITH') {
      operator = word;
    } else if (word === 'NOT') {
      const after = this.next();
      const afterWord = Parser.keyword(after);
      if (afterWord === 'IN' || afterWord === 'BETWEEN' || afterWord === 'STARTS_WITH') {
        operator = `NOT ${afterWord}`;
      } else if (afterWord !== undefined && UNSUPPORTED_OPERATOR_WORDS.has(afterWord)) {
        fail(`unsupported operator in visibility query: 'NOT ${after.text}' at position ${opToken.pos}`);
      } else {
        this.bareNot(opToken);
      }
    } else if (word !== undefined && UNSUPPORTED_OPERATOR_WORDS.has(word)) {
      fail(`unsupported operator in visibility query: ${quote(opToken.text)} at position ${opToken.pos}`);
    } else if (opToken.kind === 'eof') {
      this.missingCloseParen();
      fail(`expected an operator after '${attr}' at position ${pos}, got end of query in visibility query`);
    } else {
      fail(
        `unsupported operator in visibility query: ${Parser.describe(opToken)} after '${attr}' (supported: =, !=, <>, <, <=, >, >=, IN, NOT IN, BETWEEN, STARTS_WITH, IS NULL, IS NOT NULL)`,
      );
    }

    if (!OPERATORS_BY_TYPE[type].has(operator)) {
      fail(
        `operator '${operator}' is not supported for ${type} search attribute '${attr}' (at position ${opToken.pos} in visibility query)`,
      );
    }

    switch (operator) {
      case 'IN':
      case 'NOT IN': {
        const open = this.next();
        if (open.kind !== 'lparen')
          fail(
            `expected '(' after ${operator} for '${attr}', got ${Parser.describe(open)} in visibility query`,
          );
        const values: Scalar[] = [];
        if (this.peek().kind === 'rparen')
          fail(`${operator} list for '${attr}' at position ${open.pos} is empty in visibility query`);
        for (;;) {
          values.push(this.parseValue(attr, type, operator));
          const sep = this.next();
          if (sep.kind === 'rparen') break;
          if (sep.kind === 'comma') continue;
          if (sep.kind === 'eof')
            fail(`unbalanced parentheses in visibility query: missing ')' for '(' at position ${open.pos}`);
          fail(
            `expected ',' or ')' in ${operator} list for '${attr}', got ${Parser.describe(sep)} in visibility query`,
          );
        }
        return this.inPredicate(attr, type, values, operator === 'NOT IN');
      }
      case 'BETWEEN':
      case 'NOT BETWEEN': {
        const low = this.parseValue(attr, type, operator);
        this.expectKeyword('AND', `between the bounds of ${operator} for '${attr}'`);
        const high = this.parseValue(attr, type, `${operator} ... AND`);
        const negated = operator === 'NOT BETWEEN';
        return (record) => {
          const value = scalarOf(record, attr, type);
          if (value === undefined) return false;
          return (compareScalars(value, low) >= 0 && compareScalars(value, high) <= 0) !== negated;
        };
      }
      case 'STARTS_WITH':
      case 'NOT STARTS_WITH': {
        const prefix = this.parseValue(attr, type, operator);
        const negated = operator === 'NOT STARTS_WITH';
        return (record) => {
          const value = scalarOf(record, attr, type);
          if (typeof value !== 'string' || typeof prefix !== 'string') return false;
          return value.startsWith(prefix) !== negated;
        };
      }
      default:
        return this.comparisonPredicate(attr, type, operator, this.parseValue(attr, type, operator));
    }
  }

  private inPredicate(
    attr: string,
    type: SearchAttributeType,
    values: Scalar[],
    negated: boolean,
  ): Predicate {
    if (type === 'KeywordList') {
      const wanted = new Set(values);
      return (record) => {
        const list = listOf(record, attr);
        if (list === undefined) return false;
        return list.some((item) => wanted.has(item)) !== negated;
      };
    }
    const wanted = new Set(values);
    return (record) => {
      const value = scalarOf(record, attr, type);
      if (value === undefined) return false;
      return wanted.has(value) !== negated;
    };
  }

  private comparisonPredicate(
    attr: string,
    type: SearchAttributeType,
    operator: Operator,
    literal: Scalar,
  ): Predicate {
    if (type === 'KeywordList') {
      const negated = operator === '!=';
      return (record) => {
        const list = listOf(record, attr);
        if (list === undefined) return false;
        return list.includes(literal as string) !== negated;
      };
    }
    if (type === 'Text') {
      const phrase = wordsOf(String(literal));
      const negated = operator === '!=';
      return (record) => {
        const value = scalarOf(record, attr, type);
        if (typeof value !== 'string') return false;
        return containsPhrase(wordsOf(value), phrase) !== negated;
      };
    }
    const test = comparisonTest(operator);
    return (record) => {
      const value = scalarOf(record, attr, type);
      if (value === undefined) return false;
      return test(compareScalars(value, literal));
    };
  }

  private parseOrderKey(): OrderKey {
    const { attr, type, pos } = this.parseAttribute('in ORDER BY');
    if (!SORTABLE_TYPES.has(type)) {
      fail(`cannot ORDER BY ${type} search attribute '${attr}' (at position ${pos} in visibility query)`);
    }
    let descending = false;
    if (this.isKeyword('DESC')) {
      this.next();
      descending = true;
    } else if (this.isKeyword('ASC')) {
      this.next();
    }
    return { attr, type, descending };
  }
}

function comparisonTest(operator: Operator): (order: number) => boolean {
  switch (operator) {
    case '=':
      return (order) => order === 0;
    case '!=':
      return (order) => order !== 0;
    case '<':
      return (order) => order < 0;
    case '<=':
      return (order) => order <= 0;
    case '>':
      return (order) => order > 0;
    case '>=':
      return (order) => order >= 0;
    default:
      return fail(`internal error: '${operator}' is not a comparison`);
  }
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

const MATCH_ALL: CompiledVisibilityQuery = Object.freeze({
  matches: () => true,
  compare: () => 0,
  hasOrderBy: false,
});

/**
 * Compile a visibility list filter. `typeOf` returns the type of a known attribute (system or registered
 * custom), undefined if unknown. Throws VisibilityQueryError for any query it cannot accept.
 */
export function compileVisibilityQuery(
  query: string,
  typeOf: (name: string) => SearchAttributeType | undefined,
): CompiledVisibilityQuery {
  if (typeof query !== 'string') fail(`visibility query must be a string, got ${typeof query}`);
  if (query.length > MAX_VISIBILITY_QUERY_BYTES || utf8Length(query) > MAX_VISIBILITY_QUERY_BYTES) {
    fail(`visibility query is too long: ${utf8Length(query)} bytes (limit ${MAX_VISIBILITY_QUERY_BYTES})`);
  }
  const tokens = tokenize(query);
  if (tokens.length === 1) return MATCH_ALL;
  const { where, orderBy } = new Parser(tokens, typeOf).parse();

  const matches: Predicate = where ?? (() => true);
  const compare = (a: VisibilityRecord, b: VisibilityRecord): number => {
    for (const key of orderBy) {
      const va = scalarOf(a, key.attr, key.type);
      const vb = scalarOf(b, key.attr, key.type);
      if (va === undefined || vb === undefined) {
        if (va === undefined && vb === undefined) continue;
        return va === undefined ? 1 : -1; // missing values last, whatever the direction
      }
      const order = compareScalars(va, vb);
      if (order !== 0) return key.descending ? -order : order;
    }
    return 0;
  };
  return Object.freeze({
    matches: (record: VisibilityRecord) => matches(record),
    compare,
    hasOrderBy: orderBy.length > 0,
  });
}
