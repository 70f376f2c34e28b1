import { escapeXml } from '@imgpipe/kit';
import type { buildApp } from 'fauxqs';

type FauxqsApp = ReturnType<typeof buildApp>;

/**
 * ListMultipartUploads for fauxqs, which (1.9.2) has Create/UploadPart/Complete/AbortMultipartUpload but not this
 * one (a GET ?uploads is answered as a plain listing). Uploads are tracked from the other calls' requests and
 * replies; enough for tests that check that a tool aborts what it left.
 */
export function addListMultipartUploads(app: FauxqsApp): void {
  const uploads = new Map<string, { bucket: string; key: string; initiated: Date }>();
  const parse = (url: string) => {
    const parsed = new URL(url, 'http://localhost');
    const [, bucket = '', ...rest] = parsed.pathname.split('/');
    return { query: parsed.searchParams, bucket: decodeURIComponent(bucket), key: rest.map(decodeURIComponent).join('/') };
  };
  app.addHook('onRequest', async (request, reply) => {
    const { query, bucket } = parse(request.url);
    if (request.method !== 'GET' || !query.has('uploads')) return;
    const prefix = query.get('prefix') ?? '';
    const listed = [...uploads].filter(([, u]) => u.bucket === bucket && u.key.startsWith(prefix)).sort(([, a], [, b]) => (a.key < b.key ? -1 : 1));
    const xml = [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
      `<Bucket>${escapeXml(bucket)}</Bucket><Prefix>${escapeXml(prefix)}</Prefix><IsTruncated>false</IsTruncated>`,
      ...listed.map(
        ([id, u]) =>
          `<Upload><Key>${escapeXml(u.key)}</Key><UploadId>${escapeXml(id)}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`,
      ),
      '</ListMultipartUploadsResult>',
    ].join('');
    await reply.header('content-type', 'application/xml').status(200).send(xml);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const { query, bucket, key } = parse(request.url);
    if (reply.statusCode >= 300) return payload;
    if (request.method === 'POST' && query.has('uploads') && typeof payload === 'string') {
      const id = /<UploadId>([^<]+)<\/UploadId>/.exec(payload)?.[1];
      if (id) uploads.set(id, { bucket, key, initiated: new Date() });
    } else if ((request.method === 'DELETE' || request.method === 'POST') && query.has('uploadId')) {
      uploads.delete(query.get('uploadId')!);
    }
    return payload;
  });
}
