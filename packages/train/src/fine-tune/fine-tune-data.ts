import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { argmax, sha256, type Dataset, type SplitName } from '@imgpipe/kit';
import { readModelJson, weightPaths } from '@imgpipe/engines';

/** sha256 of model.json and its weight files in order: the same as loadBackbone's BackboneInfo.sha256. */
export async function tfjsFiles(modelJson: string): Promise<{ files: string[]; hash: string }> {
  const files = [modelJson, ...weightPaths(await readModelJson(modelJson)).map((p) => join(dirname(modelJson), p))];
  return { files, hash: sha256(Buffer.concat(await Promise.all(files.map((f) => readFile(f))))) };
}

/** Rows of a split (any order) as one uint8 NHWC buffer. */
export async function readRows(dataset: Dataset, split: SplitName, rows: ArrayLike<number>, imageBytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(rows.length * imageBytes);
  await Promise.all(Array.from(rows, async (row, i) => out.set(await dataset.readPixels(split, row, 1), i * imageBytes)));
  return out;
}

/** Softmax probabilities of `n` images; `slot` (0 .. concurrency - 1) says which of the batches in flight this is. */
type PredictBatch = (pixels: Uint8Array, n: number, slot: number) => Promise<Float32Array>;

/**
 * Loss and accuracy on a split in inference mode, in batches of `batchSize`, `concurrency` of them in flight,
 * summed in split order (the same numbers whatever the concurrency, when predict gives the same probabilities).
 */
export async function evaluateSplit(dataset: Dataset, split: SplitName, batchSize: number, classes: number, predict: PredictBatch, concurrency = 1) {
  const labels = await dataset.labels(split);
  let lossSum = 0;
  let correct = 0;
  for (let group = 0; group < labels.length; group += batchSize * concurrency) {
    const starts = Array.from({ length: concurrency }, (_, i) => group + i * batchSize).filter((start) => start < labels.length);
    const probs = await Promise.all(
      starts.map(async (start, slot) => {
        const n = Math.min(batchSize, labels.length - start);
        return predict(await dataset.readPixels(split, start, n), n, slot);
      }),
    );
    starts.forEach((start, b) => {
      const p = probs[b]!;
      const n = Math.min(batchSize, labels.length - start);
      for (let i = 0; i < n; i++) {
        const label = labels[start + i]!;
        if (argmax(p, i * classes, classes) === label) correct++;
        lossSum -= Math.log(Math.max(p[i * classes + label]!, 1e-7));
      }
    });
  }
  return { loss: lossSum / labels.length, accuracy: correct / labels.length };
}

/** One-hot labels of rows, `classes` floats each. */
export function oneHot(rows: ArrayLike<number>, labels: ArrayLike<number>, classes: number): Float32Array {
  const out = new Float32Array(rows.length * classes);
  for (let i = 0; i < rows.length; i++) out[i * classes + labels[rows[i]!]!] = 1;
  return out;
}
