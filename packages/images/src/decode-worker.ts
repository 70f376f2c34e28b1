import { parentPort } from 'node:worker_threads';
import { realpathSync } from 'node:fs';
import { sha256FileSync } from '@imgpipe/kit';
import type { DecodeReply, DecodeRequest, FileIdentity } from './decode-pool.js';
import { ImageRejected } from './image-rejected.js';
import { decodeToTensorBlocking } from './image.js';

/** The thread side of DecodePool: one image (or file to hash) per request, the pixels moved (not copied) back. */
const port = parentPort!;
const post = (reply: DecodeReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

/** The file's identity; a file that cannot be resolved or read has none of that part, as kit's async readers. */
function identify(path: string): FileIdentity {
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // a missing file keeps its path; decoding rejects it
  }
  let content: string | undefined;
  try {
    content = sha256FileSync(path);
  } catch {
    content = undefined;
  }
  return { real, content };
}

port.on('message', async (request: DecodeRequest) => {
  const { id, path } = request;
  if ('identify' in request) {
    post({ type: 'identity', id, identity: identify(path) });
    return;
  }
  const { options } = request;
  try {
    const pixels = await decodeToTensorBlocking(path, options);
    const whole = pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength;
    try {
      post({ type: 'result', id, pixels }, whole ? [pixels.buffer as ArrayBuffer] : []);
    } catch {
      // sharp's output lives in memory V8 cannot hand over: copied instead.
      post({ type: 'result', id, pixels });
    }
  } catch (error) {
    if (error instanceof ImageRejected) {
      const cause = error.cause instanceof Error ? { cause: error.cause.message } : {};
      post({
        type: 'rejected',
        id,
        reason: error.reason,
        source: error.source,
        detail: error.detail,
        ...(error.hint ? { hint: error.hint } : {}),
        ...cause,
      });
    } else post({ type: 'error', id, message: (error as Error).message });
  }
});
post({ type: 'ready' });
