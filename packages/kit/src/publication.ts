import { InputError } from './errors.js';
import { isInsidePath } from './model-files.js';
import { sha256 } from './files.js';

/**
 * A publication (upload-s3): every object lives under `<prefix>/p/<id>/` (the familiar layout: results.csv,
 * model/, load_model.mjs, eval files), and ONE manifest, `<prefix>/publication.json`, written last, lists them with
 * size and sha256. Readers trust only what the manifest lists, so they see the old publication or the new one.
 */
export const PUBLICATION_FORMAT = 'imgpipe-publication/1';
export const PUBLICATION_FILE = 'publication.json';
/** The lease a publisher holds on the prefix while it publishes (written with If-None-Match: *). */
export const PUBLICATION_LEASE_FILE = 'publication.lock';
/** Where a publication's objects live below the prefix: `p/<id>/`. */
export const PUBLICATION_OBJECTS_DIR = 'p/';

export interface PublicationObject {
  /** The path in the published layout, e.g. 'model/card.json'. */
  name: string;
  /** The object key relative to the prefix, e.g. 'p/3f2a…/model/card.json'. */
  key: string;
  size: number;
  sha256: string;
}

export interface PublicationManifest {
  format: typeof PUBLICATION_FORMAT;
  /** Content id: the same files give the same id (and the same `p/<id>/`). */
  id: string;
  /** The published run (its directory name), when known. */
  run: string;
  created: string;
  objects: PublicationObject[];
  /**
   * Keys (relative to the prefix) that earlier publications wrote and that were still there when this one was
   * made: what its publisher removes after the commit, and the next one retries if that was cut short. Only
   * keys an earlier manifest listed (or the pre-manifest layout proven by imgpipe's metadata) ever get here.
   */
  superseded?: string[];
}

/** The id of a publication from its files: sha256 over sorted "name size sha256" lines, 16 hex digits. */
export function publicationId(files: { name: string; size: number; sha256: string }[]): string {
  const lines = files.map((f) => `${f.name} ${f.size} ${f.sha256}\n`).sort();
  return sha256(lines.join('')).slice(0, 16);
}

/** Parse and check a manifest's text; InputError naming `source` when it is not one. */
export function parsePublication(text: string, source: string): PublicationManifest {
  let manifest: PublicationManifest;
  try {
    manifest = JSON.parse(text) as PublicationManifest;
  } catch (error) {
    throw new InputError(`${source}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (manifest?.format !== PUBLICATION_FORMAT)
    throw new InputError(`${source}: format is ${JSON.stringify(manifest?.format)}, expected '${PUBLICATION_FORMAT}'`);
  if (!Array.isArray(manifest.objects) || manifest.objects.length === 0) throw new InputError(`${source}: lists no objects`);
  for (const object of manifest.objects) {
    if (
      !isInsidePath(object?.name) ||
      !isInsidePath(object.key) ||
      !Number.isSafeInteger(object.size) ||
      !/^[0-9a-f]{64}$/.test(String(object.sha256))
    ) {
      throw new InputError(`${source}: object ${JSON.stringify(object)} needs a name and key inside the prefix, a size and a sha256`);
    }
  }
  if (manifest.superseded !== undefined && (!Array.isArray(manifest.superseded) || !manifest.superseded.every((key) => isInsidePath(key)))) {
    throw new InputError(`${source}: superseded must list keys inside the prefix`);
  }
  return manifest;
}

/** The manifest's objects whose name is under `dir` ('model/'), renamed relative to it; all of them for ''. */
export function publicationObjectsUnder(manifest: PublicationManifest, dir: string): PublicationObject[] {
  const base = dir === '' || dir.endsWith('/') ? dir : `${dir}/`;
  return manifest.objects.filter((o) => o.name.startsWith(base)).map((o) => ({ ...o, name: o.name.slice(base.length) }));
}
