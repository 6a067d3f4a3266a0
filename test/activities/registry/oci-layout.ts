/**
 * Builds tiny OCI image layouts for the registry tests, by hand and checked against the official OCI
 * image-spec v1.1 JSON Schemas (src/sandbox/fakes/specs/oci-image-spec): a one-file layer (tar + gzip), its config,
 * the image manifest, and for multi-platform tags an image index; `index.json` names each by tag
 * (`org.opencontainers.image.ref.name`), which is what `skopeo copy oci:<dir>:<tag>` reads.
 *
 * The schemas are JSON Schema draft-04 and Ajv 8 has no draft-04 meta-schema (that needs the separate
 * `ajv-draft-04` package, which is not installed). They use only keywords whose meaning is the same in
 * draft-07 (type, properties, required, pattern, minimum/maximum, items, minItems, oneOf, patternProperties,
 * $ref, format), so they are loaded into Ajv's draft-07 with mechanical changes only: the draft-04 `$schema`
 * and every draft-04 `id` (Ajv refuses the keyword) are dropped, and each file gets an `$id` under one base
 * URI so that their relative `$ref`s (`defs-descriptor.json#/definitions/mediaType`) resolve to each other,
 * as the image-spec's own Go validator resolves them by file name. The `media` annotation is an unknown
 * keyword to draft-07 and is ignored.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { ValidateFunction } from 'ajv';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const SCHEMA_DIR = path.join(
  __dirname,
  '..',
  '..',
  '..',
  'src',
  'sandbox',
  'fakes',
  'specs',
  'oci-image-spec',
);
const SCHEMA_BASE = 'https://opencontainers.org/schema/v1.1.1/';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface OciSchemas {
  manifest: ValidateFunction;
  index: ValidateFunction;
  config: ValidateFunction;
  layout: ValidateFunction;
}

/** The official schemas, compiled (see the module comment for how draft-04 is loaded). */
export function loadOciSchemas(): OciSchemas {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const file of fs.readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'))) {
    const schema = withoutDraft04Ids(JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), 'utf8')));
    ajv.addSchema({ ...(schema as object), $id: SCHEMA_BASE + file });
  }
  const get = (file: string): ValidateFunction => {
    const validate = ajv.getSchema(SCHEMA_BASE + file);
    if (!validate) throw new Error(`OCI schema ${file} did not load`);
    return validate;
  };
  return {
    manifest: get('image-manifest-schema.json'),
    index: get('image-index-schema.json'),
    config: get('config-schema.json'),
    layout: get('image-layout-schema.json'),
  };
}

/** Drops draft-04 `id`s (string-valued; no schema here has a property named `id`) and `$schema`. */
function withoutDraft04Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft04Ids);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !((k === 'id' && typeof v === 'string') || k === '$schema'))
      .map(([k, v]) => [k, withoutDraft04Ids(v)]),
  );
}

function check(validate: ValidateFunction, value: unknown, what: string): void {
  if (!validate(value)) throw new Error(`${what} breaks the OCI schema: ${JSON.stringify(validate.errors)}`);
}

/** A ustar archive with one regular file (the layer content). */
function tarWithOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512, 0);
  const put = (value: string, offset: number, length: number) => header.write(value, offset, length, 'ascii');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(content.length, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512, 0);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024, 0)]);
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface BuiltImage extends Descriptor {
  tag: string;
  /** The manifests inside, for an index. */
  manifests?: (Descriptor & { platform: { os: string; architecture: string } })[];
}

class Layout {
  private readonly blobDir: string;

  constructor(
    private readonly dir: string,
    private readonly schemas: OciSchemas,
  ) {
    this.blobDir = path.join(dir, 'blobs', 'sha256');
    fs.mkdirSync(this.blobDir, { recursive: true });
  }

  blob(mediaType: string, bytes: Buffer): Descriptor {
    const hex = createHash('sha256').update(bytes).digest('hex');
    fs.writeFileSync(path.join(this.blobDir, hex), bytes);
    return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
  }

  json(mediaType: string, value: unknown): Descriptor {
    return this.blob(mediaType, Buffer.from(JSON.stringify(value)));
  }

  image(tag: string, platform: { os: string; architecture: string }): Descriptor {
    const tar = tarWithOneFile('release.txt', Buffer.from(`aceh-commerce ${tag} ${platform.architecture}\n`));
    const layer = this.blob(OCI_LAYER, zlib.gzipSync(tar));
    const config = {
      created: '2026-08-22T10:00:00Z',
      architecture: platform.architecture,
      os: platform.os,
      config: {
        Env: ['PATH=/usr/bin'],
        Cmd: ['/release.txt'],
        Labels: { 'org.opencontainers.image.version': tag },
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(tar).digest('hex')}`] },
      history: [{ created: '2026-08-22T10:00:00Z', created_by: 'aceh-release registry test' }],
    };
    check(this.schemas.config, config, `config of ${tag}`);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: this.json(OCI_CONFIG, config),
      layers: [layer],
      annotations: { 'org.opencontainers.image.version': tag },
    };
    check(this.schemas.manifest, manifest, `manifest of ${tag}`);
    return this.json(OCI_MANIFEST, manifest);
  }

  finish(refs: (Descriptor & { tag: string })[]): void {
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: refs.map(({ tag, ...d }) => ({
        ...d,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      })),
    };
    check(this.schemas.index, index, 'index.json');
    const layout = { imageLayoutVersion: '1.0.0' };
    check(this.schemas.layout, layout, 'oci-layout');
    fs.writeFileSync(path.join(this.dir, 'index.json'), JSON.stringify(index));
    fs.writeFileSync(path.join(this.dir, 'oci-layout'), JSON.stringify(layout));
  }
}

/**
 * Writes an OCI image layout in `dir` with one entry per tag: a single-platform image, or an index of one
 * image per platform when `platforms` are given.
 */
export function buildOciLayout(
  dir: string,
  images: { tag: string; platforms?: { os: string; architecture: string }[] }[],
  schemas: OciSchemas = loadOciSchemas(),
): BuiltImage[] {
  const layout = new Layout(dir, schemas);
  const built: BuiltImage[] = images.map(({ tag, platforms }) => {
    if (!platforms) return { tag, ...layout.image(tag, { os: 'linux', architecture: 'amd64' }) };
    const manifests = platforms.map((platform) => ({ ...layout.image(tag, platform), platform }));
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests };
    check(schemas.index, index, `index of ${tag}`);
    return { tag, ...layout.json(OCI_INDEX, index), manifests };
  });
  layout.finish(built.map(({ tag, mediaType, digest, size }) => ({ tag, mediaType, digest, size })));
  return built;
}
