import { parentPort } from 'node:worker_threads';
import { answerRequests } from '@imgpipe/kit/worker-thread';
import type { DecodeReply, DecodeRequest } from './decode-pool.js';
import { identifyFile, type FileIdentity } from './file-identity.js';
import { ImageRejected } from './image-rejected.js';
import { decodeFileIdentified, decodeToTensorBlocking } from './image.js';

/**
 * The thread side of DecodePool: one image (or file to hash) per request, the pixels written into the request's shared
 * memory or moved (not copied) back.
 */
const port = parentPort!;
const post = (reply: DecodeReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

answerRequests(async (request: DecodeRequest) => {
  const { id } = request;
  if ('identify' in request) {
    post({ type: 'identities', id, identities: request.identify.map(identifyFile) });
    return;
  }
  const { path, options, into } = request;
  try {
    if (request.withIdentity) {
      const { identity, outcome } = await decodeFileIdentified(path, options, into);
      if ('rejected' in outcome) postRejected(id, outcome.rejected, identity);
      else postPixels(id, into ? undefined : outcome.pixels, identity);
      return;
    }
    const pixels = await decodeToTensorBlocking(path, options, into);
    postPixels(id, into ? undefined : pixels);
  } catch (error) {
    if (error instanceof ImageRejected) postRejected(id, error);
    else post({ type: 'error', id, message: (error as Error).message });
  }
});
post({ type: 'ready' });

/** The pixels moved back, or none when they were written into the request's shared memory. */
function postPixels(id: number, pixels: Uint8Array | undefined, identity?: FileIdentity) {
  const withIdentity = identity ? { identity } : {};
  if (!pixels) {
    post({ type: 'result', id, ...withIdentity });
    return;
  }
  const whole = pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength;
  try {
    post({ type: 'result', id, pixels, ...withIdentity }, whole ? [pixels.buffer as ArrayBuffer] : []);
  } catch {
    // sharp's output lives in memory V8 cannot hand over: copied instead.
    post({ type: 'result', id, pixels, ...withIdentity });
  }
}

function postRejected(id: number, error: ImageRejected, identity?: FileIdentity) {
  const cause = error.cause instanceof Error ? { cause: error.cause.message } : {};
  post({
    type: 'rejected',
    id,
    reason: error.reason,
    source: error.source,
    detail: error.detail,
    ...(error.hint ? { hint: error.hint } : {}),
    ...cause,
    ...(identity ? { identity } : {}),
  });
}
