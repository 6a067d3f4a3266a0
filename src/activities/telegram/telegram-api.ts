/**
 * The Telegram Bot API as it is on the wire, after the Bot API description (`methods.sendMessage`,
 * `types.Message`, `types.Chat`, `types.ResponseParameters`) and its response envelope
 * `{"ok": true, "result": ...}` | `{"ok": false, "error_code", "description", "parameters"?}`; and the
 * transport quirks the HTTP client must not see: the bot token is part of every URL, and flood control
 * says how long to wait in the body (`parameters.retry_after`), not in a `Retry-After` header.
 */
import { z } from 'zod';
import type { Fetch } from '../http/http-client';

/** `Chat`: only `id` and `type` are required by the API. */
export const TelegramChat = z.object({
  id: z.number().int(),
  type: z.enum(['private', 'group', 'supergroup', 'channel']),
  title: z.string().optional(),
  username: z.string().optional(),
});

/** `Message`: `message_id`, `date` (unix seconds) and `chat` are required; the rest is optional. */
export const TelegramMessage = z.object({
  message_id: z.number().int(),
  date: z.number().int(),
  chat: TelegramChat,
  text: z.string().optional(),
});
export type TelegramMessage = z.infer<typeof TelegramMessage>;

/** `ResponseParameters`: why a request failed and what to do about it. */
export const TelegramResponseParameters = z.object({
  migrate_to_chat_id: z.number().int().optional(),
  retry_after: z.number().int().optional(),
});

/** The envelope of a method returning a `Message`. */
export const TelegramMessageResponse = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), result: TelegramMessage, description: z.string().optional() }),
  z.object({
    ok: z.literal(false),
    error_code: z.number().int(),
    description: z.string(),
    parameters: TelegramResponseParameters.optional(),
  }),
]);
export type TelegramMessageResponse = z.infer<typeof TelegramMessageResponse>;

/** Escapes text for `parse_mode: "HTML"` (the three characters the Bot API wants as entities). */
export function escapeTelegramHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Replaces the token (plain and URL-encoded) in a text. */
export function redactToken(text: string, token: string): string {
  let out = text;
  for (const form of new Set([token, encodeURIComponent(token)])) out = out.split(form).join('[redacted]');
  return out;
}

/**
 * Wraps fetch for the Bot API so that what reaches the HTTP client (and from there messages, details and
 * workflow history) can never carry the bot token, and so that flood control works like any 429:
 *
 * - a thrown network error is replaced by one whose message and code have the token removed (an error
 *   from a custom fetch or a proxy may quote the URL); a cancellation or timeout passes through as is;
 * - an error answer's body has the token removed; its `parameters.retry_after` becomes a `Retry-After`
 *   header, and a `migrate_to_chat_id` is spelled out in the description for the operator.
 */
export function telegramFetch(base: Fetch, token: string): Fetch {
  return async (input, init) => {
    let response: Response;
    try {
      response = await base(input, init);
    } catch (err) {
      if (init?.signal?.aborted) throw err;
      const e = err instanceof Error ? err : new Error(String(err));
      const code = (e as { cause?: { code?: unknown } }).cause?.code ?? (e as { code?: unknown }).code;
      const safe = new Error(redactToken(e.message, token));
      safe.name = e.name;
      if (typeof code === 'string') Object.assign(safe, { code: redactToken(code, token) });
      throw safe;
    }
    if (response.ok) return response;
    let text = redactToken(await response.text(), token);
    const headers = new Headers(response.headers);
    const parsed = TelegramMessageResponse.safeParse(safeJson(text));
    if (parsed.success && !parsed.data.ok) {
      const { parameters, description } = parsed.data;
      if (parameters?.retry_after !== undefined && !headers.has('retry-after'))
        headers.set('retry-after', String(parameters.retry_after));
      if (parameters?.migrate_to_chat_id !== undefined) {
        text = JSON.stringify({
          ...parsed.data,
          description: `${description} (the chat moved: configure chat id ${parameters.migrate_to_chat_id})`,
        });
      }
    }
    headers.delete('content-length');
    return new Response(text, { status: response.status, statusText: response.statusText, headers });
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
