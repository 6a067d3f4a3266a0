/**
 * A client of HAProxy's runtime API (the "stats socket", a unix socket or `ipv4@host:port`): one command
 * per connection in non-interactive mode, the answer read until HAProxy closes the connection. Answers are
 * parsed and classified here:
 *
 * | answer                                             | type                |
 * | -------------------------------------------------- | ------------------- |
 * | connection refused, no such socket, timeout, reset | UpstreamUnavailable |
 * | socket file not accessible (EACCES)                | Unauthorized        |
 * | `Permission denied` (socket level below admin)     | Unauthorized        |
 * | `No such backend.`, `Can't find backend.`, `No such server.` | NotFound  |
 * | any other text after a `set` command               | UpstreamRejected    |
 * | `show servers state` table we cannot read          | ContractViolation   |
 */
import net from 'node:net';
import { FailureType, failure } from '../../errors';

/** Where the runtime API listens: a unix socket path or a TCP address (`stats socket ipv4@host:port`). */
export type HaproxySocketAddress = { path: string } | { host: string; port: number };

/** HAProxy's three administrative states of a server as the runtime API sets them. */
export type HaproxyAdminState = 'ready' | 'drain' | 'maint';

/** One row of `show servers state`, the fields this project uses. */
export interface HaproxyServerState {
  backend: string;
  server: string;
  /** Operational state: 0 stopped (down), 1 starting, 2 running, 3 stopping. */
  operational: number;
  admin: HaproxyAdminState;
  /** The weight in effect (`srv_uweight`), 0..256. */
  weight: number;
  /** The weight from the configuration file (`srv_iweight`). */
  initialWeight: number;
}

export interface HaproxyRuntimeClientOptions {
  socket: HaproxySocketAddress;
  /** Bound on one command (connect + answer); 5 s by default. */
  timeoutMs?: number;
}

// srv_admin_state bits (HAProxy's SRV_ADMF_*): forced/inherited/config/resolution/hostname maintenance, and
// forced/inherited drain.
const ADMIN_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const ADMIN_DRAIN_BITS = 0x08 | 0x10;

const NOT_FOUND_ANSWERS = [/^No such backend/i, /^Can't find backend/i, /^No such server/i];

function describe(socket: HaproxySocketAddress): string {
  return 'path' in socket ? `unix socket ${socket.path}` : `${socket.host}:${socket.port}`;
}

export class HaproxyRuntimeClient {
  constructor(private readonly options: HaproxyRuntimeClientOptions) {}

  /** Sends one command and returns HAProxy's raw answer. Only transport failures are classified here. */
  send(command: string, signal?: AbortSignal): Promise<string> {
    if (/[\n;]/.test(command)) {
      // one command per connection: a newline or ';' would smuggle a second one in
      return Promise.reject(
        failure(
          FailureType.InvalidInput,
          `HAProxy runtime command must be a single command: ${JSON.stringify(command)}`,
        ),
      );
    }
    const where = describe(this.options.socket);
    const timeoutMs = this.options.timeoutMs ?? 5_000;
    return new Promise<string>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
        return;
      }
      const socket = net.connect(this.options.socket);
      const chunks: Buffer[] = [];
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        fn();
      };
      const onAbort = () =>
        settle(() => reject(signal?.reason instanceof Error ? signal.reason : new Error('cancelled')));
      const timer = setTimeout(
        () =>
          settle(() =>
            reject(
              failure(
                FailureType.UpstreamUnavailable,
                `HAProxy runtime API at ${where} did not answer "${command}" within ${timeoutMs} ms; will retry`,
                { details: { system: 'HAProxy', socket: where, command, reason: 'timed out' } },
              ),
            ),
          ),
        timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('connect', () => socket.write(`${command}\n`));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => settle(() => resolve(Buffer.concat(chunks).toString('utf8'))));
      socket.on('error', (err: NodeJS.ErrnoException) =>
        settle(() => {
          const reason = err.code ?? err.message;
          if (err.code === 'EACCES') {
            reject(
              failure(
                FailureType.Unauthorized,
                `HAProxy runtime API at ${where} is not accessible to this worker (EACCES); check the socket's owner and mode`,
                { details: { system: 'HAProxy', socket: where, command, reason } },
              ),
            );
            return;
          }
          reject(
            failure(
              FailureType.UpstreamUnavailable,
              `HAProxy runtime API at ${where} could not be reached (${reason}); is HAProxy running with "stats socket ... level admin"? Will retry`,
              { details: { system: 'HAProxy', socket: where, command, reason } },
            ),
          );
        }),
      );
    });
  }

  /** Runs a command that answers nothing on success (`set ...`); any text in the answer is a failure. */
  async execute(command: string, signal?: AbortSignal): Promise<void> {
    const answer = (await this.send(command, signal)).trim();
    if (answer.length > 0) throw this.classifyAnswer(command, answer);
  }

  /** The servers of one backend, as `show servers state <backend>` reports them. */
  async showServersState(backend: string, signal?: AbortSignal): Promise<HaproxyServerState[]> {
    const command = `show servers state ${backend}`;
    const answer = await this.send(command, signal);
    const lines = answer.split('\n').filter((l) => l.trim().length > 0);
    const header = lines.find((l) => l.startsWith('# '));
    if (!header) {
      const text = lines.join(' ').trim();
      if (text.length > 0 && !/^\d+$/.test(text)) throw this.classifyAnswer(command, text);
      throw this.contractViolation(command, 'the answer has no "# be_id be_name ..." header line');
    }
    const fields = header.slice(2).trim().split(/\s+/);
    const column = (field: string): number => {
      const index = fields.indexOf(field);
      if (index < 0) throw this.contractViolation(command, `the header has no ${field} column`);
      return index;
    };
    const col = {
      backend: column('be_name'),
      server: column('srv_name'),
      operational: column('srv_op_state'),
      admin: column('srv_admin_state'),
      weight: column('srv_uweight'),
      initialWeight: column('srv_iweight'),
    };
    const rows = lines.slice(lines.indexOf(header) + 1).filter((l) => !l.startsWith('#'));
    return rows.map((row) => {
      const values = row.trim().split(/\s+/);
      const text = (index: number): string => {
        const value = values[index];
        if (value === undefined) throw this.contractViolation(command, `a row has too few columns: ${row}`);
        return value;
      };
      const int = (index: number): number => {
        const value = Number(text(index));
        if (!Number.isInteger(value))
          throw this.contractViolation(command, `a row has a non-numeric field: ${row}`);
        return value;
      };
      const adminBits = int(col.admin);
      const admin: HaproxyAdminState =
        adminBits & ADMIN_MAINT_BITS ? 'maint' : adminBits & ADMIN_DRAIN_BITS ? 'drain' : 'ready';
      return {
        backend: text(col.backend),
        server: text(col.server),
        operational: int(col.operational),
        admin,
        weight: int(col.weight),
        initialWeight: int(col.initialWeight),
      };
    });
  }

  private classifyAnswer(command: string, answer: string) {
    const where = describe(this.options.socket);
    const said = answer.split('\n')[0]?.slice(0, 200) ?? '';
    const details = { system: 'HAProxy', socket: where, command, answer: said };
    if (/^Permission denied/i.test(said)) {
      return failure(
        FailureType.Unauthorized,
        `HAProxy refused "${command}" (Permission denied): the stats socket at ${where} must be configured with "level admin"`,
        { details },
      );
    }
    if (NOT_FOUND_ANSWERS.some((re) => re.test(said))) {
      return failure(FailureType.NotFound, `HAProxy answered "${said}" to "${command}"`, { details });
    }
    return failure(FailureType.UpstreamRejected, `HAProxy refused "${command}": ${said}`, { details });
  }

  private contractViolation(command: string, problem: string) {
    return failure(
      FailureType.ContractViolation,
      `HAProxy's answer to "${command}" cannot be read: ${problem}`,
      { details: { system: 'HAProxy', socket: describe(this.options.socket), command } },
    );
  }
}
