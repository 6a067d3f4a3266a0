/**
 * A Telegram Bot API fake that cannot drift from the API: every request is checked against the method's
 * parameters in the Bot API description (`src/sandbox/fakes/specs/telegram-bot-api.json`: required parameters,
 * no unknown ones, every value of a listed type, objects checked field by field), and every response the
 * fake sends is checked against the description's types (`Message` and what it contains,
 * `ResponseParameters`) before it leaves. The envelope follows the Bot API documentation:
 * `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description", "parameters"?}`.
 *
 * Served: `POST|GET /bot<token>/sendMessage` with a JSON, form-encoded or query-string body. A wrong token
 * answers 401 `Unauthorized`, an unknown method 404 `Not Found`, a request that breaks the description
 * 400 `Bad Request: ...` (and is recorded as a violation), an unknown chat 400 `Bad Request: chat not
 * found`. `floodControl(seconds)` makes the next request hit flood control (429 with
 * `parameters.retry_after`).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FakeResponse, RecordedRequest } from './scripted-http-server';
import { ScriptedHttpServer } from './scripted-http-server';

interface SpecField {
  name: string;
  types: string[];
  required: boolean;
}
interface SpecEntry {
  name: string;
  fields?: SpecField[];
  subtypes?: string[];
}
interface BotApiSpec {
  version: string;
  methods: Record<string, SpecEntry>;
  types: Record<string, SpecEntry>;
}

let cachedSpec: BotApiSpec | undefined;
export function botApiSpec(): BotApiSpec {
  cachedSpec ??= JSON.parse(
    fs.readFileSync(path.join(__dirname, 'specs', 'telegram-bot-api.json'), 'utf8'),
  ) as BotApiSpec;
  return cachedSpec;
}

/** Every way `value` fails to be one of `types` (Bot API type names), as `path: problem` lines. */
export function checkBotApiValue(value: unknown, types: string[], where: string, depth = 0): string[] {
  let best: string[] | undefined;
  for (const type of types) {
    const problems = checkOneType(value, type, where, depth);
    if (problems.length === 0) return [];
    if (!best || problems.length < best.length) best = problems;
  }
  return best ?? [`${where}: no type given`];
}

function checkOneType(value: unknown, type: string, where: string, depth: number): string[] {
  if (depth > 12) return [];
  if (type.startsWith('Array of ')) {
    if (!Array.isArray(value)) return [`${where}: expected ${type}`];
    const inner = type.slice('Array of '.length);
    return value.flatMap((v, i) => checkOneType(v, inner, `${where}[${i}]`, depth + 1));
  }
  switch (type) {
    case 'Integer':
      return Number.isInteger(value) ? [] : [`${where}: expected Integer, got ${JSON.stringify(value)}`];
    case 'Float':
      return typeof value === 'number' ? [] : [`${where}: expected Float`];
    case 'String':
      return typeof value === 'string' ? [] : [`${where}: expected String`];
    case 'Boolean':
      return typeof value === 'boolean' ? [] : [`${where}: expected Boolean`];
    case 'InputFile':
      return typeof value === 'string' || (typeof value === 'object' && value !== null)
        ? []
        : [`${where}: expected InputFile`];
  }
  const spec = botApiSpec().types[type];
  if (!spec) return [`${where}: type ${type} is not in the Bot API description`];
  if (spec.subtypes) {
    for (const sub of spec.subtypes) if (checkOneType(value, sub, where, depth + 1).length === 0) return [];
    return [`${where}: matches none of ${spec.subtypes.join(', ')}`];
  }
  return checkObject(value, spec, where, depth);
}

function checkObject(value: unknown, spec: SpecEntry, where: string, depth: number): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [`${where}: expected ${spec.name}`];
  const record = value as Record<string, unknown>;
  const fields = spec.fields ?? [];
  const problems: string[] = [];
  for (const field of fields) {
    const v = record[field.name];
    if (v === undefined) {
      if (field.required) problems.push(`${where}.${field.name}: required by ${spec.name}`);
    } else problems.push(...checkBotApiValue(v, field.types, `${where}.${field.name}`, depth + 1));
  }
  for (const key of Object.keys(record))
    if (!fields.some((f) => f.name === key)) problems.push(`${where}.${key}: not a field of ${spec.name}`);
  return problems;
}

/** Checks a method's parameters (as an object) against the description. */
export function checkMethodParameters(method: string, params: Record<string, unknown>): string[] {
  const spec = botApiSpec().methods[method];
  if (!spec) return [`${method}: not a Bot API method`];
  return checkObject(params, { ...spec, name: `${method} parameters` }, method, 0);
}

/** Form and query-string values are strings; the Bot API reads them by the parameter's type. */
function fromStrings(method: string, raw: URLSearchParams): Record<string, unknown> {
  const fields = botApiSpec().methods[method]?.fields ?? [];
  const out: Record<string, unknown> = {};
  for (const [name, value] of raw) {
    const types = fields.find((f) => f.name === name)?.types ?? ['String'];
    if (types.includes('Integer') && /^-?\d+$/.test(value)) out[name] = Number(value);
    else if (types.includes('Boolean') && (value === 'true' || value === 'false'))
      out[name] = value === 'true';
    else if (types.includes('String')) out[name] = value;
    else {
      try {
        out[name] = JSON.parse(value);
      } catch {
        out[name] = value;
      }
    }
  }
  return out;
}

const HTML_TAGS = new Set([
  'b',
  'strong',
  'i',
  'em',
  'u',
  'ins',
  's',
  'strike',
  'del',
  'span',
  'tg-spoiler',
  'a',
  'code',
  'pre',
  'blockquote',
  'tg-emoji',
  'tg-time',
]);

/** The text as Telegram counts it after entity parsing, or the parse error it answers. */
function parsedText(text: string, parseMode: string | undefined): { text: string } | { error: string } {
  if (parseMode === undefined) return { text };
  if (parseMode === 'HTML') {
    const open: string[] = [];
    let out = '';
    const re = /<(\/?)([a-z-]+)[^>]*>|&(lt|gt|amp|quot);|[<>&]/g;
    let last = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      out += text.slice(last, m.index);
      last = m.index + m[0].length;
      if (m[2]) {
        if (!HTML_TAGS.has(m[2]))
          return {
            error: `Bad Request: can't parse entities: Unsupported start tag "${m[2]}" at byte offset ${m.index}`,
          };
        if (m[1]) {
          if (open.pop() !== m[2])
            return {
              error: `Bad Request: can't parse entities: Unmatched end tag at byte offset ${m.index}, expected "</${open.at(-1) ?? ''}>", found "</${m[2]}>"`,
            };
        } else open.push(m[2]);
      } else if (m[3]) out += { lt: '<', gt: '>', amp: '&', quot: '"' }[m[3]];
      else
        return {
          error: `Bad Request: can't parse entities: Unsupported start tag at byte offset ${m.index}`,
        };
    }
    out += text.slice(last);
    if (open.length > 0)
      return {
        error: `Bad Request: can't parse entities: Can't find end tag corresponding to start tag "${open.at(-1)}"`,
      };
    return { text: out };
  }
  if (parseMode === 'MarkdownV2') {
    // Formatting characters (* _ ~ ` |) may stand alone; every other reserved character needs a backslash.
    // (Links and block quotes are beyond this fake.)
    for (let i = 0; i < text.length; i += 1) {
      const c = text[i] ?? '';
      if (c === '\\') {
        i += 1;
        continue;
      }
      if ('[]()>#+-={}.!'.includes(c))
        return {
          error: `Bad Request: can't parse entities: Character '${c}' is reserved and must be escaped with the preceding '\\'`,
        };
    }
    return { text: text.replace(/\\(.)/g, '$1').replace(/[*_~`|]/g, '') };
  }
  if (parseMode === 'Markdown') return { text: text.replace(/[*_`[\]]/g, '') };
  return { error: 'Bad Request: unsupported parse_mode' };
}

export interface TelegramChatConfig {
  id: number;
  type: 'private' | 'group' | 'supergroup' | 'channel';
  title?: string;
  username?: string;
}

export interface SentMessage {
  chatId: number;
  text: string;
  parseMode?: string;
  silent: boolean;
  messageId: number;
}

export class TelegramFake {
  readonly sent: SentMessage[] = [];
  private nextMessageId = 100;

  private constructor(
    readonly server: ScriptedHttpServer,
    private readonly token: string,
    private readonly chats: TelegramChatConfig[],
  ) {}

  static async start(options: { token: string; chats: TelegramChatConfig[] }): Promise<TelegramFake> {
    let fake: TelegramFake | undefined;
    await ScriptedHttpServer.start((server) => {
      const created = new TelegramFake(server, options.token, options.chats);
      fake = created;
      return (req) => created.handle(req);
    });
    if (!fake) throw new Error('TelegramFake did not start');
    return fake;
  }

  get baseUrl(): string {
    return this.server.baseUrl;
  }

  /** Requests that broke the documented contract; a test expects none. */
  get violations(): string[] {
    return this.server.violations;
  }

  close(): Promise<void> {
    return this.server.close();
  }

  /** The next request hits flood control: 429 with `parameters.retry_after`. */
  floodControl(retryAfterSeconds: number): void {
    this.server.scriptNext(
      this.error(429, `Too Many Requests: retry after ${retryAfterSeconds}`, {
        retry_after: retryAfterSeconds,
      }),
    );
  }

  /** An error answer, its `parameters` checked against `ResponseParameters`. */
  error(code: number, description: string, parameters?: Record<string, unknown>): FakeResponse {
    if (parameters) {
      const problems = checkBotApiValue(parameters, ['ResponseParameters'], 'parameters');
      if (problems.length > 0)
        throw new Error(`the fake built invalid ResponseParameters: ${problems.join('; ')}`);
    }
    return {
      status: code,
      body: { ok: false, error_code: code, description, ...(parameters ? { parameters } : {}) },
    };
  }

  private refuse(code: number, description: string): FakeResponse {
    this.server.violation(`${code}: ${description}`);
    return this.error(code, description);
  }

  private handle(req: RecordedRequest): FakeResponse {
    const route = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(req.url.pathname);
    if (!route) return this.refuse(404, 'Not Found');
    if (decodeURIComponent(route[1] ?? '') !== this.token) return this.refuse(401, 'Unauthorized');
    const method = route[2] ?? '';
    if (!botApiSpec().methods[method]) return this.refuse(404, 'Not Found');
    if (method !== 'sendMessage') return this.refuse(501, `the fake does not serve ${method}`);
    if (req.method !== 'POST' && req.method !== 'GET') return this.refuse(405, 'Method Not Allowed');

    let params: Record<string, unknown>;
    const contentType = String(req.headers['content-type'] ?? '');
    if (req.body && contentType.startsWith('application/json')) {
      try {
        const parsed: unknown = JSON.parse(req.body);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          return this.refuse(400, 'Bad Request: the body must be a JSON object');
        params = parsed as Record<string, unknown>;
      } catch {
        return this.refuse(400, "Bad Request: can't parse JSON");
      }
    } else if (req.body && contentType.startsWith('application/x-www-form-urlencoded')) {
      params = fromStrings(method, new URLSearchParams(req.body));
    } else if (!req.body) {
      params = fromStrings(method, req.url.searchParams);
    } else {
      return this.refuse(400, `Bad Request: unsupported content type ${contentType}`);
    }
    const problems = checkMethodParameters(method, params);
    if (problems.length > 0) return this.refuse(400, `Bad Request: ${problems.join('; ')}`);
    return this.sendMessage(params);
  }

  private sendMessage(params: Record<string, unknown>): FakeResponse {
    const chatParam = params['chat_id'];
    const chat = this.chats.find((c) =>
      typeof chatParam === 'number'
        ? c.id === chatParam
        : c.username !== undefined && `@${c.username}` === chatParam,
    );
    if (!chat) return this.refuse(400, 'Bad Request: chat not found');
    const parseMode = params['parse_mode'] as string | undefined;
    const parsed = parsedText(params['text'] as string, parseMode);
    if ('error' in parsed) return this.refuse(400, parsed.error);
    if (parsed.text.trim().length === 0) return this.refuse(400, 'Bad Request: message text is empty');
    if ([...parsed.text].length > 4096) return this.refuse(400, 'Bad Request: message is too long');
    const chatObject = {
      id: chat.id,
      type: chat.type,
      ...(chat.title ? { title: chat.title } : {}),
      ...(chat.username ? { username: chat.username } : {}),
    };
    const message = {
      message_id: this.nextMessageId++,
      ...(chat.type === 'channel' ? { sender_chat: chatObject } : {}),
      date: Math.floor(Date.now() / 1000),
      chat: chatObject,
      text: parsed.text,
    };
    const problems = checkBotApiValue(message, ['Message'], 'result');
    if (problems.length > 0) throw new Error(`the fake built an invalid Message: ${problems.join('; ')}`);
    this.sent.push({
      chatId: chat.id,
      text: parsed.text,
      parseMode,
      silent: params['disable_notification'] === true,
      messageId: message.message_id,
    });
    return { status: 200, body: { ok: true, result: message } };
  }
}
