import type { buildApp } from 'fauxqs';

type FauxqsApp = ReturnType<typeof buildApp>;

const errorXml = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
const PRECONDITION_FAILED = errorXml('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
const NO_SUCH_KEY = errorXml('NoSuchKey', 'The specified key does not exist.');

/**
 * Conditional PutObject for fauxqs, which (1.9.2) stores a PUT whatever its `If-None-Match` / `If-Match` say. As
 * Amazon S3 does: `If-None-Match: *` fails with 412 PreconditionFailed when the key exists, `If-Match: <etag>` when
 * it is missing or holds another ETag. Conditional PUTs of one key are serialised from the check to the reply, so
 * of two racing `If-None-Match: *` writers exactly one wins.
 */
export function addConditionalWrites(app: FauxqsApp): void {
  const busy = new Map<string, Promise<void>>();
  const releases = new WeakMap<object, () => void>();
  app.addHook('onRequest', async (request, reply) => {
    const ifNoneMatch = request.headers['if-none-match'];
    const ifMatch = request.headers['if-match'];
    if (request.method !== 'PUT' || (ifNoneMatch === undefined && ifMatch === undefined)) return;
    const path = new URL(request.url, 'http://localhost').pathname;
    const previous = busy.get(path) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => mine);
    busy.set(path, chained);
    releases.set(request, () => {
      release();
      if (busy.get(path) === chained) busy.delete(path);
    });
    await previous;
    const head = await app.inject({ method: 'HEAD', url: path });
    const etag = head.statusCode === 200 ? String(head.headers.etag ?? '') : undefined;
    const unquote = (value: string) => value.replace(/^W\//, '').replace(/^"|"$/g, '');
    const refused =
      (ifNoneMatch !== undefined && etag !== undefined) ||
      (ifMatch !== undefined && (etag === undefined || (ifMatch !== '*' && unquote(String(ifMatch)) !== unquote(etag))));
    if (!refused) return;
    const missing = etag === undefined;
    return reply
      .status(missing ? 404 : 412)
      .header('content-type', 'application/xml')
      .send(missing ? NO_SUCH_KEY : PRECONDITION_FAILED);
  });
  const done = async (request: object) => {
    releases.get(request)?.();
    releases.delete(request);
  };
  app.addHook('onResponse', done);
  app.addHook('onRequestAbort', done);
}
