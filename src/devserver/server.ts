/**
 * The embedded Temporal-compatible dev server: an in-memory WorkflowService, OperatorService, TestService
 * and gRPC health service on one port, for the unmodified Temporal SDK client and worker.
 *
 * It exists because neither the Temporal CLI dev server nor the SDK's test server can be downloaded where
 * this project is built and tested. Production always runs against a real Temporal cluster.
 */
import * as grpc from '@grpc/grpc-js';
import { addProtoService } from './grpc-transport';
import { Engine } from './engine';
import {
  healthHandlers,
  operatorServiceHandlers,
  testServiceHandlers,
  workflowServiceHandlers,
} from './services';
import { VirtualClock } from './virtual-clock';
import { enums } from './proto';

export interface DevServerOptions {
  /** Port to listen on; 0 picks a free one. */
  port?: number;
  /** Address to bind; loopback by default. */
  host?: string;
  /** Time skipping (test-server mode): time jumps whenever nothing is outstanding and the test unlocked. */
  timeSkipping?: boolean;
  /** With time skipping, start unlocked (the Java test server's --enable-time-skipping); locked by default. */
  startUnlocked?: boolean;
  /** Namespaces to create at start; `default` always exists. */
  namespaces?: string[];
  /** Custom search attributes to register in every initial namespace: name -> type (`Keyword`, `Int`, ...). */
  searchAttributes?: Record<string, string>;
  /** Where internal errors are reported; stderr by default. */
  log?: (message: string) => void;
  /** Eager activity dispatch (`system.enableActivityEagerExecution`); on by default, as in the Temporal CLI's dev server. */
  eagerActivityExecution?: boolean;
}

const TYPE_BY_NAME: Record<string, number> = {
  text: enums.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  keyword: enums.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  int: enums.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  double: enums.IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  bool: enums.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  datetime: enums.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  keywordlist: enums.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

export function parseSearchAttributeType(type: string): number {
  const value = TYPE_BY_NAME[type.toLowerCase().replace(/[_-]/g, '')];
  if (value === undefined) {
    throw new Error(
      `unknown search attribute type ${JSON.stringify(type)}: use one of Text, Keyword, Int, Double, Bool, Datetime, KeywordList`,
    );
  }
  return value;
}

export class DevServer {
  readonly engine: Engine;
  readonly clock: VirtualClock;
  private server: grpc.Server | undefined;
  private boundPort = 0;
  private readonly options: DevServerOptions;

  private constructor(options: DevServerOptions) {
    this.options = options;
    const log = options.log ?? ((message: string) => process.stderr.write(`[devserver] ${message}\n`));
    this.clock = new VirtualClock({
      timeSkipping: options.timeSkipping ?? false,
      startLocked: !options.startUnlocked,
      onError: (err) => log(`timer failed: ${String(err)}`),
    });
    this.engine = new Engine({
      clock: this.clock,
      log,
      eagerActivityExecution: options.eagerActivityExecution,
    });
    const attributes: Record<string, number> = {};
    for (const [name, type] of Object.entries(options.searchAttributes ?? {}))
      attributes[name] = parseSearchAttributeType(type);
    for (const name of new Set(['default', ...(options.namespaces ?? [])])) {
      const ns = this.engine.ensureNamespace(name);
      this.engine.addSearchAttributes(ns, attributes);
    }
  }

  /** Starts a server and resolves once it listens. */
  static async start(options: DevServerOptions = {}): Promise<DevServer> {
    const devServer = new DevServer(options);
    await devServer.listen();
    return devServer;
  }

  private async listen(): Promise<void> {
    const log = this.options.log ?? ((message: string) => process.stderr.write(`[devserver] ${message}\n`));
    const onInternalError = (err: unknown) =>
      log(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    const server = new grpc.Server({
      'grpc.max_receive_message_length': 128 * 1024 * 1024,
      'grpc.max_send_message_length': 128 * 1024 * 1024,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    addProtoService(
      server,
      'temporal.api.workflowservice.v1.WorkflowService',
      workflowServiceHandlers(this.engine),
      onInternalError,
    );
    addProtoService(
      server,
      'temporal.api.operatorservice.v1.OperatorService',
      operatorServiceHandlers(this.engine),
      onInternalError,
    );
    addProtoService(
      server,
      'temporal.api.testservice.v1.TestService',
      testServiceHandlers(this.engine),
      onInternalError,
    );
    addProtoService(server, 'grpc.health.v1.Health', healthHandlers(), onInternalError);
    const host = this.options.host ?? '127.0.0.1';
    const hostPart = host.includes(':') ? `[${host}]` : host;
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(
        `${hostPart}:${this.options.port ?? 0}`,
        grpc.ServerCredentials.createInsecure(),
        (err, port) =>
          err
            ? reject(new Error(`cannot listen on ${hostPart}:${this.options.port ?? 0}: ${err.message}`))
            : resolve(port),
      );
    });
    this.server = server;
  }

  get port(): number {
    return this.boundPort;
  }

  /** `host:port` for `Connection.connect({ address })` and `NativeConnection.connect({ address })`. */
  get address(): string {
    const host = this.options.host ?? '127.0.0.1';
    return `${host.includes(':') ? `[${host}]` : host}:${this.boundPort}`;
  }

  get timeSkipping(): boolean {
    return this.clock.timeSkipping;
  }

  /** Stops accepting calls, answers open long polls empty, and closes the port. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.engine.matching.close();
    this.clock.close();
    if (!server) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 2_000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
