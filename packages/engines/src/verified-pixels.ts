import { createHash } from 'node:crypto';
import { InputError, sha256File, type Dataset, type SplitName } from '@imgpipe/kit';

/**
 * The sha256 of a split's pixel file, fed by the batches as they are read (in any order; they are hashed in file
 * order), so reading for extraction and verifying against the manifest is one pass over the file.
 */
export class PixelHasher {
  private readonly hash = createHash('sha256');
  private next = 0;
  private readonly waiting = new Map<number, Uint8Array>();

  constructor(
    private readonly dataset: Dataset,
    private readonly split: SplitName,
  ) {}

  /** Bytes read at `offset` of the file. */
  add(offset: number, bytes: Uint8Array): void {
    this.waiting.set(offset, bytes);
    for (let chunk = this.waiting.get(this.next); chunk; chunk = this.waiting.get(this.next)) {
      this.waiting.delete(this.next);
      this.hash.update(chunk);
      this.next += chunk.length;
    }
  }

  /** Throws an InputError naming the file when what was read is not what the manifest lists. */
  verify(): void {
    checkPixels(
      this.dataset,
      this.split,
      this.next === this.dataset.manifest.splits[this.split].pixels.bytes ? this.hash.digest('hex') : `incomplete (${this.next} bytes hashed)`,
    );
  }
}

/** Hash a split's pixel file in one streamed pass and check it against the manifest (when nothing else reads it). */
export async function verifyPixelFile(dataset: Dataset, split: SplitName): Promise<void> {
  checkPixels(dataset, split, await sha256File(dataset.pixelsPath(split)));
}

function checkPixels(dataset: Dataset, split: SplitName, actual: string): void {
  const expected = dataset.manifest.splits[split].pixels.sha256;
  if (actual !== expected) {
    throw new InputError(
      `${dataset.pixelsPath(split)}: sha256 ${actual} does not match ${expected} in the dataset manifest; ` +
        'the file changed after prep-data wrote it (disk fault or an edit); rebuild the dataset with prep-data --force',
    );
  }
}
