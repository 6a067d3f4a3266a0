/**
 * The Telegram activity against the Bot API fake (src/sandbox/fakes/telegram-fake.ts), which checks every request
 * and response against the Bot API description.
 */
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type TelegramActivitiesOptions,
  createTelegramActivities,
} from '../../../src/activities/telegram/telegram-activities';
import { escapeTelegramHtml } from '../../../src/activities/telegram/telegram-api';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';
import {
  TelegramFake,
  checkBotApiValue,
  checkMethodParameters,
} from '../../../src/sandbox/fakes/telegram-fake';
import { freeLocalPort } from '../../support/prometheus-server';
import { activityRecorder } from '../activity-recorder';

const TOKEN = '7012345678:AAH-telegram-secret_Zq9x8w7v6u5t4';
const ALERTS = {
  id: -1001987654321,
  type: 'channel' as const,
  title: 'Luxima alerts',
  username: 'luxima_alerts',
};

let telegram: TelegramFake;

beforeAll(async () => {
  telegram = await TelegramFake.start({ token: TOKEN, chats: [ALERTS] });
});
afterAll(() => telegram?.close());
afterEach(() => {
  expect(telegram.server.violations).toEqual([]);
  telegram.server.reset();
});

const options = (extra: Partial<TelegramActivitiesOptions> = {}): TelegramActivitiesOptions => ({
  botToken: TOKEN,
  chatId: '@luxima_alerts',
  baseUrl: telegram.baseUrl,
  timeoutMs: 2_000,
  ...extra,
});
const newEnv = () =>
  new MockActivityEnvironment({ activityId: 'notify-1' }, { logger: new DefaultLogger('ERROR') });

const { seen, run, failureOf } = activityRecorder(() => newEnv());

describe('sendMessage (R4)', () => {
  it('posts to the alerts channel by username', async () => {
    const res = await run(() =>
      createTelegramActivities(options()).sendMessage({ text: 'Release v1.2.0 is live on production' }),
    );
    expect(res.chatId).toBe(ALERTS.id);
    expect(Date.parse(res.date)).toBeGreaterThan(Date.now() - 60_000);
    expect(telegram.sent).toContainEqual(
      expect.objectContaining({
        messageId: res.messageId,
        text: 'Release v1.2.0 is live on production',
        silent: false,
      }),
    );
    const req = telegram.server.requests.at(-1);
    expect(req?.method).toBe('POST');
    expect(req?.url.pathname).toBe(`/bot${TOKEN}/sendMessage`);
    expect(JSON.parse(req?.body ?? '{}')).toEqual({
      chat_id: '@luxima_alerts',
      text: 'Release v1.2.0 is live on production',
    });
  });

  it('posts by numeric chat id, with HTML, silently, into a topic', async () => {
    const text = `<b>Rollback</b> of v1.2.0: error rate ${escapeTelegramHtml('<5% → 7.5%')} & rising`;
    const res = await run(() =>
      createTelegramActivities(options({ chatId: String(ALERTS.id), messageThreadId: 3 })).sendMessage({
        text: text.replace(' & ', ' &amp; '),
        parseMode: 'HTML',
        silent: true,
      }),
    );
    expect(telegram.sent.find((m) => m.messageId === res.messageId)).toMatchObject({
      text: 'Rollback of v1.2.0: error rate <5% → 7.5% & rising',
      parseMode: 'HTML',
      silent: true,
    });
    expect(JSON.parse(telegram.server.requests.at(-1)?.body ?? '{}')).toMatchObject({
      chat_id: ALERTS.id,
      message_thread_id: 3,
      disable_notification: true,
    });
  });

  it('posts MarkdownV2 that is escaped, and Telegram refuses it unescaped', async () => {
    const acts = createTelegramActivities(options());
    const res = await run(() =>
      acts.sendMessage({ text: '*Release* v1\\.2\\.0 is live', parseMode: 'MarkdownV2' }),
    );
    expect(telegram.sent.find((m) => m.messageId === res.messageId)?.text).toBe('Release v1.2.0 is live');
    const f = await failureOf(
      newEnv().run(() => acts.sendMessage({ text: 'v1.2.0 is live', parseMode: 'MarkdownV2' })),
    );
    expect(f.type).toBe('UpstreamRejected');
    expect(f.message).toContain("Character '.' is reserved");
    expect(telegram.server.violations).toHaveLength(1);
    telegram.server.reset();
  });

  it('is at-least-once: a lost answer followed by a retry posts twice', async () => {
    const acts = createTelegramActivities(options());
    telegram.server.scriptNext({ loseResponse: true });
    const lost = await failureOf(newEnv().run(() => acts.sendMessage({ text: 'Deploy started' })));
    expect(lost.type).toBe('UpstreamUnavailable');
    expect(lost.nonRetryable).toBe(false);
    await run(() => acts.sendMessage({ text: 'Deploy started' }));
    expect(telegram.sent.filter((m) => m.text === 'Deploy started')).toHaveLength(2);
  });
});

describe('failures', () => {
  it('turns flood control into RateLimited with the retry_after from the body', async () => {
    telegram.floodControl(17);
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('RateLimited');
    expect(f.nonRetryable).toBe(false);
    expect(f.nextRetryDelay).toBe(17_000);
    expect(f.message).toContain('Too Many Requests: retry after 17');
  });

  it('classifies an ok:false envelope sent with status 200 by its error_code', async () => {
    telegram.server.scriptNext({
      status: 200,
      body: {
        ok: false,
        error_code: 429,
        description: 'Too Many Requests: retry after 4',
        parameters: { retry_after: 4 },
      },
    });
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('RateLimited');
    expect(f.nextRetryDelay).toBe(4_000);
  });

  it('reports a revoked token as Unauthorized, and no message carries it', async () => {
    const other = '7012345678:AAH-revoked-token_0000000000';
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options({ botToken: other })).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('POST /sendMessage');
    expect(serialisedFailure(f)).not.toContain(other);
    expect(serialisedFailure(f)).not.toContain('AAH-revoked');
    telegram.server.reset();
  });

  it('reports a bot that may not post in the channel as Unauthorized', async () => {
    telegram.server.scriptNext(telegram.error(403, 'Forbidden: bot is not a member of the channel chat'));
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('bot is not a member');
  });

  it('reports an unknown chat and unparsable HTML as UpstreamRejected', async () => {
    const chat = await failureOf(
      newEnv().run(() =>
        createTelegramActivities(options({ chatId: '@nobody_here' })).sendMessage({ text: 'x' }),
      ),
    );
    expect(chat.type).toBe('UpstreamRejected');
    expect(chat.nonRetryable).toBe(true);
    expect(chat.message).toContain('chat not found');
    const html = await failureOf(
      newEnv().run(() =>
        createTelegramActivities(options()).sendMessage({ text: 'latency <5ms', parseMode: 'HTML' }),
      ),
    );
    expect(html.type).toBe('UpstreamRejected');
    expect(html.message).toContain("can't parse entities");
    expect(telegram.server.violations).toHaveLength(2);
    telegram.server.reset();
  });

  it('tells the operator where a migrated group went', async () => {
    telegram.server.scriptNext(
      telegram.error(400, 'Bad Request: group chat was upgraded to a supergroup chat', {
        migrate_to_chat_id: -1001111111111,
      }),
    );
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('UpstreamRejected');
    expect(f.message).toContain('configure chat id -1001111111111');
  });

  it.each([
    [{ status: 404, body: { ok: false, error_code: 404, description: 'Not Found' } }, 'NotFound', true],
    [{ status: 502, body: '<html>502 Bad Gateway</html>' }, 'UpstreamUnavailable', false],
    [
      { status: 500, body: { ok: false, error_code: 500, description: 'Internal Server Error' } },
      'UpstreamUnavailable',
      false,
    ],
    [
      { status: 200, body: { ok: true, result: { message_id: 1, chat: { id: 1, type: 'channel' } } } },
      'ContractViolation',
      true,
    ],
    [{ status: 200, body: { result: {} } }, 'ContractViolation', true],
  ])('classifies %j as %s', async (answer, type, nonRetryable) => {
    telegram.server.scriptNext(answer);
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
  });

  it('scrubs the token from error bodies that echo the URL', async () => {
    telegram.server.scriptNext({ status: 502, body: `upstream error for /bot${TOKEN}/sendMessage` });
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.message).toContain('/bot[redacted]/sendMessage');
  });

  it('scrubs the token from network errors that quote the URL', async () => {
    const quoting: typeof fetch = (input) =>
      Promise.reject(
        new TypeError(`request to ${input instanceof Request ? input.url : input.toString()} failed`),
      );
    const f = await failureOf(
      newEnv().run(() => createTelegramActivities(options({ fetch: quoting })).sendMessage({ text: 'x' })),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.message).toContain('[redacted]');
  });

  it('reports Telegram being unreachable as retryable UpstreamUnavailable', async () => {
    telegram.server.scriptNext({ dropConnection: true });
    const dropped = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x' })),
    );
    expect(dropped.type).toBe('UpstreamUnavailable');
    const port = await freeLocalPort();
    const down = await failureOf(
      newEnv().run(() =>
        createTelegramActivities(options({ baseUrl: `http://127.0.0.1:${port}` })).sendMessage({ text: 'x' }),
      ),
    );
    expect(down.type).toBe('UpstreamUnavailable');
    expect(down.nonRetryable).toBe(false);
  });

  it('refuses bad input and bad configuration without calling Telegram', async () => {
    const long = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: 'x'.repeat(4097) })),
    );
    expect(long.type).toBe('InvalidInput');
    const empty = await failureOf(
      newEnv().run(() => createTelegramActivities(options()).sendMessage({ text: '' })),
    );
    expect(empty.type).toBe('InvalidInput');
    expect(() => createTelegramActivities(options({ chatId: '#luxima-alerts' }))).toThrow(/chat id/);
    let shapeError: unknown;
    try {
      createTelegramActivities(options({ botToken: 'not a token but a secret' }));
    } catch (err) {
      shapeError = err;
    }
    expect(String(shapeError)).toContain('wrong shape');
    expect(String(shapeError)).not.toContain('not a token but a secret');
    expect(telegram.server.requests).toHaveLength(0);
  });

  it('follows the cancellation of the activity', async () => {
    telegram.server.scriptNext({ hang: true });
    const env = newEnv();
    const pending = env
      .run(() => createTelegramActivities(options()).sendMessage({ text: 'x' }))
      .then(
        () => 'finished',
        (err: unknown) => err,
      );
    await vi.waitFor(() => expect(telegram.server.hangingRequests).toBe(1), { timeout: 5_000, interval: 20 });
    env.cancel();
    const err = await pending;
    seen.push(serialisedFailure(err));
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('the fake checks against the Bot API description', () => {
  it('refuses parameters the description does not allow', () => {
    expect(checkMethodParameters('sendMessage', { chat_id: '@x', text: 'hi' })).toEqual([]);
    expect(checkMethodParameters('sendMessage', { text: 'hi' })).toEqual([
      'sendMessage.chat_id: required by sendMessage parameters',
    ]);
    expect(checkMethodParameters('sendMessage', { chat_id: 1.5, text: 'hi', colour: 'red' })).toHaveLength(2);
    expect(
      checkMethodParameters('sendMessage', {
        chat_id: 1,
        text: 'hi',
        link_preview_options: { is_disabled: 'yes' },
      }),
    ).toEqual(['sendMessage.link_preview_options.is_disabled: expected Boolean']);
  });

  it('refuses messages the description does not describe', () => {
    expect(
      checkBotApiValue({ message_id: 1, date: 2, chat: { id: 3, type: 'channel' } }, ['Message'], 'm'),
    ).toEqual([]);
    expect(checkBotApiValue({ message_id: 1, chat: { id: 3, type: 'channel' } }, ['Message'], 'm')).toEqual([
      'm.date: required by Message',
    ]);
    expect(checkBotApiValue({ retry_after: '5' }, ['ResponseParameters'], 'p')).toHaveLength(1);
  });
});

describe('credentials', () => {
  it('never lets the bot token into a result or a failure (checked over everything this file saw)', () => {
    expect(seen.length).toBeGreaterThan(15);
    for (const text of seen) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(encodeURIComponent(TOKEN));
    }
  });
});
