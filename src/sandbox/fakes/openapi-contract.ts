/**
 * Checks HTTP exchanges against an OpenAPI 3.x document, so that a fake cannot drift from the published
 * contract and an activity cannot send what the real server would refuse. Given a request (method, path,
 * query, headers, body) it finds the operation by path template and reports every way the request breaks
 * it: unknown operation, path/query parameters that are missing, unknown or of the wrong type, a body that
 * is missing, unexpected, of an undeclared content type or not matching the schema (JSON bodies, and
 * form-encoded ones read field by field), and a missing bearer
 * credential where the operation requires one. Given a response it checks the status is documented (2xx must
 * be) and the body matches the schema of that status and content type.
 *
 * Schemas are validated with Ajv (OpenAPI 3.1: the 2020-12 dialect; 3.0: draft-07, whose `nullable` Ajv
 * understands) plus ajv-formats; `$ref`s resolve inside the document. Known, documented differences between a
 * document and the real server (a spec that says "array" where the server sends an object) are declared as
 * `deviations` with the reason, never silently tolerated.
 */
import fs from 'node:fs';
import type { AnySchema, ErrorObject, Format, ValidateFunction } from 'ajv';
import type AjvCore from 'ajv/dist/core';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

type Json = Record<string, unknown>;

/** A documented difference between the document and the real server. */
export type ContractDeviation =
  | {
      /** The response of this operation and status is checked against `schema` instead of the document's. */
      kind: 'response-schema';
      operationId: string;
      status: number;
      schema: AnySchema;
      reason: string;
    }
  | {
      /** Schema errors at this instance path (and keyword) in this operation's response are not violations. */
      kind: 'ignore-response-error';
      operationId: string;
      instancePath: string;
      keyword?: string;
      reason: string;
    };

export interface OpenApiContractOptions {
  /** The path prefix the server serves the document's paths under; default: the pathname of servers[0].url. */
  basePath?: string;
  deviations?: ContractDeviation[];
  /**
   * Formats the document uses in its own sense, replacing or adding to ajv-formats' (Prometheus's
   * `duration` is `1m30s`, not ISO 8601's `PT1M30S`; its `unixtime` is a number of seconds).
   */
  formats?: Record<string, Format>;
}

export interface ContractRequest {
  method: string;
  /** The request path including the base path, without the query: `/api/v1/deploy`. */
  path: string;
  query?: URLSearchParams;
  headers?: Record<string, string | string[] | undefined>;
  /** The raw body; empty or undefined when none was sent. */
  body?: string;
}

export interface ContractResponse {
  status: number;
  contentType?: string;
  /** The raw body. */
  body?: string;
}

export interface MatchedOperation {
  operationId: string;
  method: string;
  template: string;
  pathParams: Record<string, string>;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: Json;
}

interface PathEntry {
  template: string;
  regex: RegExp;
  names: string[];
  literalSegments: number;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** `a/b~c` as a JSON-pointer token inside a URI fragment. */
function pointerToken(token: string): string {
  return encodeURIComponent(token.replace(/~/g, '~0').replace(/\//g, '~1'));
}

function pointer(...tokens: string[]): string {
  return '#/' + tokens.map(pointerToken).join('/');
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
}

function isJsonMediaType(mediaType: string): boolean {
  return mediaType === 'application/json' || mediaType.endsWith('+json');
}

/** The types a schema admits: its own `type`, and those of its `oneOf`/`anyOf` alternatives. */
function declaredTypes(schema: Json | undefined): unknown[] {
  if (!schema) return [];
  const own = schema['type'];
  const types: unknown[] = Array.isArray(own) ? [...(own as unknown[])] : own === undefined ? [] : [own];
  for (const key of ['oneOf', 'anyOf']) {
    const alternatives = schema[key];
    if (Array.isArray(alternatives)) {
      for (const alternative of alternatives) types.push(...declaredTypes(alternative as Json));
    }
  }
  return types;
}

/**
 * Turns a query, path or form string into the type its schema declares, the way a server framework would:
 * a number where a number is admitted (also as one alternative of several, as in Prometheus's
 * "RFC 3339 or Unix seconds" timestamps), a boolean where a boolean is.
 */
function coerce(value: string, schema: Json | undefined): unknown {
  const types = declaredTypes(schema);
  if ((types.includes('integer') || types.includes('number')) && /^-?\d+(\.\d+)?$/.test(value)) {
    return Number(value);
  }
  if (types.includes('boolean') && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

function formatErrors(where: string, errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${where}: ${e.instancePath || '(root)'} ${e.message ?? e.keyword}`);
}

export class OpenApiContract {
  private readonly ajv: AjvCore;
  private readonly paths: PathEntry[];
  private readonly basePath: string;
  private readonly deviations: ContractDeviation[];
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly parameterValidators = new WeakMap<object, ValidateFunction>();

  constructor(
    private readonly document: Json,
    options: OpenApiContractOptions = {},
  ) {
    const version = typeof document['openapi'] === 'string' ? document['openapi'] : '';
    if (!/^3\.[01]\./.test(version)) throw new Error(`not an OpenAPI 3.0/3.1 document (openapi: ${version})`);
    this.ajv = version.startsWith('3.1')
      ? new Ajv2020({ strict: false, allErrors: true, validateSchema: false })
      : new Ajv({ strict: false, allErrors: true, validateSchema: false });
    addFormats(this.ajv);
    for (const [name, format] of Object.entries(options.formats ?? {})) this.ajv.addFormat(name, format);
    this.ajv.addSchema(document, 'openapi');
    const servers = document['servers'] as { url: string }[] | undefined;
    const serverPath = servers?.[0] ? new URL(servers[0].url, 'http://x').pathname : '';
    this.basePath = (options.basePath ?? serverPath).replace(/\/+$/, '');
    this.deviations = options.deviations ?? [];
    this.paths = Object.keys((document['paths'] as Json | undefined) ?? {})
      .map((template) => {
        const names: string[] = [];
        const segments = template.split('/').filter(Boolean);
        const source = segments
          .map((segment) => {
            const m = /^\{(.+)\}$/.exec(segment);
            if (m?.[1]) {
              names.push(m[1]);
              return '([^/]+)';
            }
            return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          })
          .join('/');
        return {
          template,
          regex: new RegExp(`^/${source}/?$`),
          names,
          literalSegments: segments.length - names.length,
        };
      })
      // A literal segment wins over a template: /applications/public before /applications/{uuid}.
      .sort((a, b) => b.literalSegments - a.literalSegments);
  }

  static fromFile(file: string, options?: OpenApiContractOptions): OpenApiContract {
    return new OpenApiContract(JSON.parse(fs.readFileSync(file, 'utf8')) as Json, options);
  }

  /** The operation a request addresses, or undefined when the document has none. */
  findOperation(method: string, path: string): MatchedOperation | undefined {
    const m = method.toLowerCase();
    if (!path.startsWith(this.basePath)) return undefined;
    const local = path.slice(this.basePath.length) || '/';
    for (const entry of this.paths) {
      const match = entry.regex.exec(local);
      if (!match) continue;
      const op = this.operationObject(entry.template, m);
      if (!op) continue;
      const pathParams: Record<string, string> = {};
      entry.names.forEach((name, i) => (pathParams[name] = decodeURIComponent(match[i + 1] ?? '')));
      return {
        operationId: typeof op['operationId'] === 'string' ? op['operationId'] : `${m} ${entry.template}`,
        method: m,
        template: entry.template,
        pathParams,
      };
    }
    return undefined;
  }

  /** Every way `req` breaks the document; empty when it is a valid request. */
  validateRequest(req: ContractRequest): { operation?: MatchedOperation; violations: string[] } {
    const label = `${req.method.toUpperCase()} ${req.path}`;
    const operation = this.findOperation(req.method, req.path);
    if (!operation) return { violations: [`${label}: no such operation in the document`] };
    const violations: string[] = [];
    const op = this.operationObject(operation.template, operation.method) ?? {};
    const params = this.parameters(operation.template, op);

    for (const p of params.filter((x) => x.in === 'path')) {
      const value = operation.pathParams[p.name];
      if (value === undefined) violations.push(`${label}: path parameter ${p.name} missing`);
      else
        violations.push(...this.checkValue(`${label} path parameter ${p.name}`, coerce(value, p.schema), p));
    }
    const query = req.query ?? new URLSearchParams();
    const declared = new Set(params.filter((x) => x.in === 'query').map((x) => x.name));
    for (const name of new Set(query.keys())) {
      if (!declared.has(name)) violations.push(`${label}: query parameter ${name} is not in the document`);
    }
    for (const p of params.filter((x) => x.in === 'query')) {
      const value = query.get(p.name);
      if (value === null) {
        if (p.required) violations.push(`${label}: required query parameter ${p.name} missing`);
        continue;
      }
      violations.push(...this.checkValue(`${label} query parameter ${p.name}`, coerce(value, p.schema), p));
    }

    const security = (op['security'] ?? this.document['security']) as Json[] | undefined;
    if (security && security.length > 0 && security.every((s) => Object.keys(s).length > 0)) {
      const authorization = req.headers?.['authorization'];
      const schemes = security.flatMap((s) => Object.keys(s));
      const needsBearer = schemes.some((name) => {
        const scheme = this.resolve(pointer('components', 'securitySchemes', name));
        return scheme?.['type'] === 'http' && String(scheme['scheme']).toLowerCase() === 'bearer';
      });
      if (needsBearer && (typeof authorization !== 'string' || !/^Bearer \S+$/.test(authorization))) {
        violations.push(`${label}: the operation requires a bearer credential and none was sent`);
      }
    }

    const requestBody = this.deref(op['requestBody'] as Json | undefined);
    const body = req.body ?? '';
    if (!requestBody) {
      if (body.length > 0) violations.push(`${label}: the operation takes no body but one was sent`);
    } else if (body.length === 0) {
      if (requestBody['required']) violations.push(`${label}: the required body is missing`);
    } else {
      const contentHeader = req.headers?.['content-type'];
      const mediaType = mediaTypeOf(typeof contentHeader === 'string' ? contentHeader : undefined);
      const content = (requestBody['content'] as Json | undefined) ?? {};
      if (!mediaType || !(mediaType in content)) {
        violations.push(
          `${label}: body content type ${mediaType ?? '(none)'} is not one the operation accepts`,
        );
      } else if (isJsonMediaType(mediaType)) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch {
          violations.push(`${label}: the body is not JSON`);
          return { operation, violations };
        }
        const validate = this.validatorFor(this.requestBodyPointer(operation, op, mediaType));
        if (validate && !validate(parsed)) violations.push(...formatErrors(`${label} body`, validate.errors));
      } else if (mediaType === 'application/x-www-form-urlencoded') {
        const ref = this.requestBodyPointer(operation, op, mediaType);
        const validate = this.validatorFor(ref);
        const form = this.formObject(new URLSearchParams(body), this.deref(this.resolve(ref)));
        if (validate && !validate(form)) violations.push(...formatErrors(`${label} body`, validate.errors));
      }
    }
    return { operation, violations };
  }

  /** Every way `res`, the answer to `operation`, breaks the document. */
  validateResponse(operation: MatchedOperation, res: ContractResponse): string[] {
    const label = `${operation.method.toUpperCase()} ${operation.template} -> ${res.status}`;
    const override = this.deviations.find(
      (d) =>
        d.kind === 'response-schema' && d.operationId === operation.operationId && d.status === res.status,
    );
    const op = this.operationObject(operation.template, operation.method) ?? {};
    const responses = (op['responses'] as Json | undefined) ?? {};
    const key = [String(res.status), `${String(res.status)[0]}XX`, 'default'].find((k) => k in responses);
    let responsePointer: string | undefined;
    let response: Json | undefined;
    if (key) {
      responsePointer = this.operationPointer(operation, 'responses', key);
      const raw = responses[key] as Json;
      if (typeof raw['$ref'] === 'string') responsePointer = raw['$ref'];
      response = this.deref(raw);
    } else if (res.status < 400 && !override) {
      return [`${label}: status ${res.status} is not documented for ${operation.operationId}`];
    } else {
      // Error statuses need not be listed (OpenAPI: responses are not expected to be exhaustive); when the
      // document defines a shared response for the status, the body must still match it.
      const shared = this.resolve(pointer('components', 'responses', String(res.status)));
      if (shared) {
        responsePointer = pointer('components', 'responses', String(res.status));
        response = shared;
      }
    }

    const mediaType = mediaTypeOf(res.contentType);
    const body = res.body ?? '';
    const content = (response?.['content'] as Json | undefined) ?? {};
    if (!override && response && Object.keys(content).length > 0 && !(mediaType && mediaType in content)) {
      return [
        `${label}: content type ${mediaType ?? '(none)'} is not documented (${Object.keys(content).join(', ')})`,
      ];
    }
    let instance: unknown = body;
    if (mediaType && isJsonMediaType(mediaType)) {
      try {
        instance = JSON.parse(body);
      } catch {
        return [`${label}: the body is not JSON`];
      }
    }
    let validate: ValidateFunction | undefined;
    if (override && override.kind === 'response-schema') {
      validate = this.compileOverride(operation.operationId, res.status, override.schema);
    } else if (responsePointer && mediaType && mediaType in content) {
      const ref = responsePointer.replace(/^#/, '');
      validate = this.validatorFor(`#${ref}/content/${pointerToken(mediaType)}/schema`);
    }
    if (!validate || validate(instance)) return [];
    const ignored = this.deviations.filter(
      (d) => d.kind === 'ignore-response-error' && d.operationId === operation.operationId,
    );
    const errors = (validate.errors ?? []).filter(
      (e) =>
        !ignored.some(
          (d) =>
            d.kind === 'ignore-response-error' &&
            d.instancePath === e.instancePath &&
            (d.keyword === undefined || d.keyword === e.keyword),
        ),
    );
    return formatErrors(`${label} body`, errors);
  }

  private operationObject(template: string, method: string): Json | undefined {
    const item = (this.document['paths'] as Record<string, Json>)[template];
    const op = item?.[method];
    return METHODS.includes(method) && op && typeof op === 'object' ? (op as Json) : undefined;
  }

  private operationPointer(operation: MatchedOperation, ...rest: string[]): string {
    return pointer('paths', operation.template, operation.method, ...rest);
  }

  private parameters(template: string, op: Json): Parameter[] {
    const item = (this.document['paths'] as Record<string, Json>)[template] ?? {};
    const all = [...((item['parameters'] as Json[]) ?? []), ...((op['parameters'] as Json[]) ?? [])];
    const byKey = new Map<string, Parameter>();
    for (const raw of all) {
      const p = this.deref(raw) as unknown as Parameter;
      byKey.set(`${p.in}:${p.name}`, p);
    }
    return [...byKey.values()];
  }

  private requestBodyPointer(operation: MatchedOperation, op: Json, mediaType: string): string {
    const raw = op['requestBody'] as Json;
    const base =
      typeof raw['$ref'] === 'string' ? raw['$ref'] : this.operationPointer(operation, 'requestBody');
    return `${base}/content/${pointerToken(mediaType)}/schema`;
  }

  /** A form body as the object its schema describes: repeated fields as arrays where an array is declared. */
  private formObject(form: URLSearchParams, schema: Json | undefined): Record<string, unknown> {
    const properties = (schema?.['properties'] as Record<string, Json> | undefined) ?? {};
    const result: Record<string, unknown> = {};
    for (const name of new Set(form.keys())) {
      const property = this.deref(properties[name]);
      const values = form.getAll(name);
      if (declaredTypes(property).includes('array')) {
        const items = this.deref(property?.['items'] as Json | undefined);
        result[name] = values.map((v) => coerce(v, items));
      } else {
        result[name] = coerce(values[values.length - 1] ?? '', property);
      }
    }
    return result;
  }

  private checkValue(where: string, value: unknown, p: Parameter): string[] {
    if (!p.schema) return [];
    let validate = this.parameterValidators.get(p.schema);
    if (!validate) {
      validate = this.ajv.compile(p.schema);
      this.parameterValidators.set(p.schema, validate);
    }
    return validate(value) ? [] : formatErrors(where, validate.errors);
  }

  private validatorFor(ref: string): ValidateFunction | undefined {
    const cached = this.compiled.get(ref);
    if (cached) return cached;
    if (this.resolve(ref) === undefined) return undefined;
    const validate = this.ajv.getSchema(`openapi${ref}`);
    if (validate) this.compiled.set(ref, validate);
    return validate;
  }

  private compileOverride(operationId: string, status: number, schema: AnySchema): ValidateFunction {
    const key = `override:${operationId}:${status}`;
    const cached = this.compiled.get(key);
    if (cached) return cached;
    const validate = this.ajv.compile(schema);
    this.compiled.set(key, validate);
    return validate;
  }

  /** The value a local `#/...` pointer names in the document, or undefined. */
  private resolve(ref: string): Json | undefined {
    if (!ref.startsWith('#/')) return undefined;
    let node: unknown = this.document;
    for (const raw of ref.slice(2).split('/')) {
      const token = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (node === null || typeof node !== 'object') return undefined;
      node = (node as Json)[token];
    }
    return node === null || typeof node !== 'object' ? undefined : (node as Json);
  }

  private deref(node: Json | undefined): Json | undefined {
    let current = node;
    for (let i = 0; current && typeof current['$ref'] === 'string' && i < 10; i++) {
      current = this.resolve(current['$ref']);
    }
    return current;
  }
}
