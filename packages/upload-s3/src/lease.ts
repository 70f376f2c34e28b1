import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { deleteObjects, formatS3Uri, joinKey, putObjectIf, readObjectVersion, type RetryOptions, type S3Client } from '@imgpipe/s3';
import { LockedError, processAlive, PUBLICATION_LEASE_FILE, type Logger } from '@imgpipe/kit';

/** A lease not renewed for this long belongs to a publisher that died: another may take it over. */
const LEASE_SECONDS = 600;
const RENEW_MS = (LEASE_SECONDS * 1000) / 5;

interface LeaseBody {
  format: 'imgpipe-publication-lease/1';
  token: string;
  tool: 'upload-s3';
  pid: number;
  hostname: string;
  acquired: string;
  expires: string;
}

export interface PublicationLease {
  /** The lease object's URI. */
  uri: string;
  /** Whether the store refused a second `If-None-Match: *` write, i.e. honours conditional writes and so excludes other publishers. */
  exclusive: boolean;
  /** When this publisher took the lease. */
  acquired: Date;
  /** LockedError (exit 75) unless this publisher still holds the lease: call right before the commit. */
  check(): Promise<void>;
  /** Stop renewing and delete the lease if it is still this publisher's. */
  release(): Promise<void>;
}

function parseLease(bytes: Buffer): LeaseBody | undefined {
  try {
    const body = JSON.parse(bytes.toString('utf8')) as LeaseBody;
    return body?.format === 'imgpipe-publication-lease/1' && typeof body.token === 'string' ? body : undefined;
  } catch {
    return undefined;
  }
}

function heldBy(body: LeaseBody | undefined): string {
  return body ? `${body.tool} pid ${body.pid} on ${body.hostname}, since ${body.acquired}, lease until ${body.expires}` : 'an unreadable lease';
}

/**
 * Take the publication lease of a prefix (`<prefix>/publication.lock`, a PutObject with `If-None-Match: *`), so one
 * publisher at a time commits and cleans up there. A live lease of another publisher is a LockedError (exit 75);
 * one whose holder died (an expired lease, or one held by a process of this host that is gone) is taken over with
 * `If-Match` on its ETag. The lease is
 * renewed while held. Where the store ignores conditional writes (`exclusive` false) a warning says so, and the
 * callers' clean-up keeps whatever a newer publication lists.
 */
export async function acquirePublicationLease(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: RetryOptions & { log: Logger },
): Promise<PublicationLease> {
  const key = joinKey(prefix, PUBLICATION_LEASE_FILE);
  const uri = formatS3Uri(bucket, key);
  const token = randomUUID();
  const acquired = new Date();
  const body = (): string =>
    `${JSON.stringify({
      format: 'imgpipe-publication-lease/1',
      token,
      tool: 'upload-s3',
      pid: process.pid,
      hostname: hostname(),
      acquired: acquired.toISOString(),
      expires: new Date(Date.now() + LEASE_SECONDS * 1000).toISOString(),
    } satisfies LeaseBody)}\n`;
  const put = { ...options, contentType: 'application/json' };
  const busy = (holder: LeaseBody | undefined) =>
    new LockedError(
      `${uri}: another publisher holds this prefix (${heldBy(holder)}); try again when it is done (a lease not renewed for ${LEASE_SECONDS} s is taken over)`,
    );

  let etag: string | undefined;
  for (let tries = 0; etag === undefined; tries++) {
    // Looked at first as well, so a store that ignores If-None-Match still sees a live publisher.
    const existing = await readObjectVersion(client, bucket, key, options);
    const holder = existing && parseLease(existing.bytes);
    if (existing && holder?.token === token) {
      etag = existing.etag; // our own write, whose reply was lost and retried
    } else if (existing) {
      const dead = holder !== undefined && holder.hostname === hostname() && !processAlive(holder.pid);
      if (holder && !dead && Date.parse(holder.expires) > Date.now()) throw busy(holder);
      options.log.warn(
        '%s: taking over the lease of a publisher that %s (%s)',
        uri,
        dead ? 'is no longer running' : 'stopped renewing it',
        heldBy(holder),
      );
      const taken = await putObjectIf(client, bucket, key, body(), { ...put, ifMatch: existing.etag });
      if (taken === 'refused') throw busy(holder);
      etag = taken.etag;
    } else {
      const created = await putObjectIf(client, bucket, key, body(), { ...put, ifNoneMatch: '*' });
      if (created !== 'refused') etag = created.etag;
      else if (tries >= 2) throw busy(undefined);
    }
  }
  // Does the store honour If-None-Match? A second create of the key we now hold must be refused.
  const probe = await putObjectIf(client, bucket, key, body(), { ...put, ifNoneMatch: '*' });
  const exclusive = probe === 'refused';
  if (probe !== 'refused') {
    etag = probe.etag;
    options.log.warn(
      '%s: this S3 store ignores conditional writes (If-None-Match), so two publishers to this prefix are not excluded; clean-up keeps what a newer publication lists',
      uri,
    );
  }

  const renew = async () => {
    const next = await putObjectIf(client, bucket, key, body(), { ...put, retries: 2, ...(exclusive && etag ? { ifMatch: etag } : {}) }).catch(
      () => undefined,
    );
    if (next !== 'refused') {
      if (next) etag = next.etag;
      return;
    }
    // Refused: taken over (check() will say so before the commit), or our own write retried after a lost reply.
    const now = await readObjectVersion(client, bucket, key, { retries: 2 }).catch(() => undefined);
    if (now && parseLease(now.bytes)?.token === token) etag = now.etag;
    else options.log.warn('%s: the lease was taken over by another publisher (%s)', uri, heldBy(now && parseLease(now.bytes)));
  };
  const timer = setInterval(() => void renew(), RENEW_MS);
  timer.unref();

  return {
    uri,
    exclusive,
    acquired,
    async check() {
      const now = await readObjectVersion(client, bucket, key, options);
      const holder = now && parseLease(now.bytes);
      if (holder?.token !== token) {
        throw new LockedError(
          `${uri}: the lease was lost before the commit (${holder ? heldBy(holder) : 'the lease was removed'}); nothing was committed, publish again`,
        );
      }
    },
    async release() {
      clearInterval(timer);
      const now = await readObjectVersion(client, bucket, key, { retries: 2 }).catch(() => undefined);
      if (now && parseLease(now.bytes)?.token === token) await deleteObjects(client, bucket, [key], { retries: 2 }).catch(() => undefined);
    },
  };
}
