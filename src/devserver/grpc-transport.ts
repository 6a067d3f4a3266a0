/**
 * gRPC transport: turns the protobuf service descriptions from the SDK's proto root into grpc-js service
 * definitions, and plain async handlers into grpc-js unary handlers. Methods without a handler are left
 * out of the definition on purpose: grpc-js then answers `UNIMPLEMENTED "The server does not implement the
 * method /pkg.Service/Method"`, the exact text the Rust core recognises as "method missing".
 */
import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { protoRoot, lookupType } from './proto';

/** An error with a gRPC status code, raised by handlers; anything else becomes INTERNAL. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    /** google.protobuf.Any details, sent in `grpc-status-details-bin`. */
    readonly details: { typeName: string; value: object }[] = [],
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export const invalidArgument = (message: string): RpcError =>
  new RpcError(grpc.status.INVALID_ARGUMENT, message);
export const notFound = (message: string): RpcError => new RpcError(grpc.status.NOT_FOUND, message);

export interface CallContext {
  /** Absolute deadline in wall-clock ms, or Infinity when the caller set none. */
  readonly deadline: number;
  /** Aborted when the caller goes away (cancel, deadline, disconnect). */
  readonly signal: AbortSignal;
  readonly metadata: grpc.Metadata;
}

/** A handler may return a message object or its already-encoded bytes. */
export type Handler = (request: never, ctx: CallContext) => Promise<object | Buffer> | object | Buffer;
export type Handlers = Record<string, Handler>;

/** Abort reason of a cancelled call, made once: building a DOMException per call is measurable. */
const CALL_CANCELLED = Object.freeze(new Error('the call was cancelled by its caller'));

const statusType = () => lookupType('google.rpc.Status');
const anyType = () => lookupType('google.protobuf.Any');

function toServiceError(
  err: unknown,
  method: string,
  onInternalError: (err: unknown) => void,
): grpc.ServiceError {
  if (err instanceof RpcError) {
    const metadata = new grpc.Metadata();
    if (err.details.length > 0) {
      const details = err.details.map(({ typeName, value }) =>
        anyType().create({
          type_url: `type.googleapis.com/${typeName}`,
          value: lookupType(typeName).encode(value).finish(),
        }),
      );
      const status = statusType().encode({ code: err.code, message: err.message, details }).finish();
      metadata.set('grpc-status-details-bin', Buffer.from(status));
    }
    return Object.assign(new Error(err.message), { code: err.code, details: err.message, metadata });
  }
  onInternalError(err);
  const message = `internal error in ${method}: ${err instanceof Error ? err.message : String(err)}`;
  return Object.assign(new Error(message), {
    code: grpc.status.INTERNAL,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

function lowerFirst(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/**
 * Registers `handlers` (keyed by method name, either `StartWorkflowExecution` or `startWorkflowExecution`)
 * for the proto service `serviceName` on `server`. Returns the names of the methods registered.
 */
export function addProtoService(
  server: grpc.Server,
  serviceName: string,
  handlers: Handlers,
  onInternalError: (err: unknown) => void,
): string[] {
  const service: protobuf.Service = protoRoot.lookupService(serviceName);
  const definition: Record<string, grpc.MethodDefinition<object, object | Buffer>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methodsArray) {
    const handler = handlers[method.name] ?? handlers[lowerFirst(method.name)];
    if (!handler) continue;
    const requestType = service.lookupType(method.requestType);
    const responseType = service.lookupType(method.responseType);
    definition[method.name] = {
      path: `/${serviceName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: object) => Buffer.from(requestType.encode(value).finish()),
      requestDeserialize: (bytes: Buffer) => requestType.decode(bytes),
      responseSerialize: (value: object | Buffer) =>
        Buffer.isBuffer(value) ? value : Buffer.from(responseType.encode(value).finish()),
      responseDeserialize: (bytes: Buffer) => responseType.decode(bytes),
    };
    const handle: grpc.handleUnaryCall<never, object | Buffer> = (call, callback) => {
      // grpc-js emits 'cancelled' whenever a stream closes, answered or not: only a call still being handled
      // is really cancelled. The AbortController is made on first use: only long polls and waits need it.
      let abort: AbortController | undefined;
      let settled = false;
      const onCancelled = () => {
        if (settled) return;
        settled = true;
        abort?.abort(CALL_CANCELLED);
      };
      call.once('cancelled', onCancelled);
      const rawDeadline = call.getDeadline();
      const deadline =
        rawDeadline instanceof Date
          ? rawDeadline.getTime()
          : typeof rawDeadline === 'number'
            ? rawDeadline
            : Infinity;
      const ctx: CallContext = {
        deadline,
        get signal() {
          abort ??= new AbortController();
          if (settled && !abort.signal.aborted) abort.abort(CALL_CANCELLED);
          return abort.signal;
        },
        metadata: call.metadata,
      };
      const finish = (err: grpc.ServiceError | null, response?: object | Buffer) => {
        if (settled) return;
        settled = true;
        call.removeListener('cancelled', onCancelled);
        if (err) callback(err);
        else callback(null, response);
      };
      let result: ReturnType<Handler>;
      try {
        result = handler(call.request, ctx);
      } catch (err) {
        finish(toServiceError(err, method.name, onInternalError));
        return;
      }
      if (!(result instanceof Promise)) {
        finish(null, result as object | Buffer);
        return;
      }
      result.then(
        (response: object | Buffer) => finish(null, response),
        (err: unknown) => finish(toServiceError(err, method.name, onInternalError)),
      );
    };
    implementation[method.name] = handle as grpc.UntypedHandleCall;
  }
  server.addService(definition, implementation);
  return Object.keys(definition);
}
