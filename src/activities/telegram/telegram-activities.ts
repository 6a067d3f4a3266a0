/**
 * Telegram activity: tells the team in the alerts channel (R4, `#luxima-alerts`) what a release or a
 * rollback did.
 */
import { z } from 'zod';
import { cancellationSignal, parseActivityInput } from '../activity-support';
import { classifyHttpStatus } from '../http/classify-http-failure';
import type { Fetch } from '../http/http-client';
import { HttpClient } from '../http/http-client';
import { TelegramMessageResponse, redactToken, telegramFetch } from './telegram-api';

/** Input of `sendMessage`. With `parseMode` the caller escapes the text (see `escapeTelegramHtml`). */
export const SendMessageInput = z
  .object({
    text: z.string().min(1),
    parseMode: z.enum(['HTML', 'MarkdownV2']).optional(),
    /** Deliver without a notification sound. */
    silent: z.boolean().optional(),
  })
  // The Bot API counts 4096 characters after entity parsing; plain text can be checked here.
  .refine((i) => i.parseMode !== undefined || [...i.text].length <= 4096, {
    message: 'text must be at most 4096 characters',
    path: ['text'],
  });
export type SendMessageInput = z.infer<typeof SendMessageInput>;

/** Result of `sendMessage`: where the message landed. */
export const SendMessageResult = z.object({
  messageId: z.number().int(),
  chatId: z.number().int(),
  /** When Telegram accepted it (ISO 8601). */
  date: z.string(),
});
export type SendMessageResult = z.infer<typeof SendMessageResult>;

export interface TelegramActivitiesOptions {
  /** The bot token (`<bot id>:<secret>`); resolved by the worker, never logged or put in a message. */
  botToken: string;
  /** The alerts chat: a channel username (`@luxima_alerts`) or a numeric chat id (`-100…`). */
  chatId: string | number;
  /** A forum topic of the chat, when the alerts go to one. */
  messageThreadId?: number;
  /** The Bot API server; `https://api.telegram.org` by default (or a local Bot API server). */
  baseUrl?: string;
  fetch?: Fetch;
  timeoutMs?: number;
}

const TOKEN_SHAPE = /^\d+:[A-Za-z0-9_-]+$/;
const CHAT_SHAPE = /^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,31})$/;

/**
 * Builds the Telegram activities for one bot and one chat.
 *
 * Not idempotent: the Bot API has no idempotency key and no way to look up what a bot sent, so delivery is
 * at-least-once. An attempt whose answer is lost (timeout, dropped connection) is retried and may post the
 * message twice; the team sees a duplicate alert rather than none. Keep the retry policy of this activity
 * short-lived so a late retry does not post a stale alert.
 *
 * The bot token is part of every Bot API URL. It goes only into the URL: the HTTP client sees the
 * operation as `POST /sendMessage`, and error bodies and network errors are scrubbed of the token
 * before they are classified, so no message, detail or result can carry it.
 *
 * Failures: flood control (429 with `parameters.retry_after`) is `RateLimited` with `nextRetryDelay`; a
 * revoked token (401) and a bot that may not post in the chat (403) are `Unauthorized`; a missing chat
 * or a message Telegram cannot parse (400) `UpstreamRejected`; 5xx and network errors retryable; an
 * answer off the documented envelope `ContractViolation`; an `ok: false` envelope is classified by its
 * `error_code` like the HTTP status it stands for.
 *
 * @throws Error at construction when the token or chat id has the wrong shape (the message never
 *   contains the token).
 */
export function createTelegramActivities(options: TelegramActivitiesOptions) {
  if (!TOKEN_SHAPE.test(options.botToken))
    throw new Error(
      'Telegram bot token has the wrong shape: expected <bot id>:<secret> as BotFather issues it',
    );
  const chatId = options.chatId;
  if (!CHAT_SHAPE.test(String(chatId)))
    throw new Error(`Telegram chat id ${JSON.stringify(chatId)} is neither a numeric id nor an @username`);
  const base = (options.baseUrl ?? 'https://api.telegram.org').replace(/\/+$/, '');
  const http = new HttpClient({
    system: 'Telegram',
    baseUrl: `${base}/bot${options.botToken}`,
    fetch: telegramFetch(options.fetch ?? fetch, options.botToken),
    timeoutMs: options.timeoutMs,
  });

  return {
    /** Posts `text` to the configured chat (at least once; see the factory). */
    async sendMessage(input: SendMessageInput): Promise<SendMessageResult> {
      const { text, parseMode, silent } = parseActivityInput(SendMessageInput, input, 'sendMessage');
      const res = await http.request({
        method: 'POST',
        path: '/sendMessage',
        body: {
          chat_id: typeof chatId === 'string' && /^-?\d+$/.test(chatId) ? Number(chatId) : chatId,
          text,
          ...(parseMode ? { parse_mode: parseMode } : {}),
          ...(silent ? { disable_notification: true } : {}),
          ...(options.messageThreadId !== undefined ? { message_thread_id: options.messageThreadId } : {}),
        },
        schema: TelegramMessageResponse,
        signal: cancellationSignal(),
      });
      const body = res.body;
      if (!body.ok) {
        throw classifyHttpStatus(
          body.error_code,
          { system: 'Telegram', operation: 'POST /sendMessage' },
          {
            retryAfterMs:
              body.parameters?.retry_after === undefined ? undefined : body.parameters.retry_after * 1000,
            upstreamMessage: redactToken(body.description, options.botToken).slice(0, 300),
          },
        );
      }
      return {
        messageId: body.result.message_id,
        chatId: body.result.chat.id,
        date: new Date(body.result.date * 1000).toISOString(),
      };
    },
  };
}

export type TelegramActivities = ReturnType<typeof createTelegramActivities>;
