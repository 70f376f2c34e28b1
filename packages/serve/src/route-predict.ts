import { annotateImage } from './annotate.js';
import { parseJsonObject, readBody } from './body.js';
import type { Prediction } from './classifier.js';
import { ready } from './route-common.js';
import type { AppState, Reply, RouteContext } from './route-types.js';
import { parseSeedRequest } from './request.js';

/** The seed's route: {"data":[{"path","encoded"}]} -> {path: {pred, encoded, probs}}. */
export async function predictSeed({ request }: RouteContext, state: AppState): Promise<Reply> {
  const classifier = ready(state);
  const body = parseJsonObject(await readBody(request, state.maxBody, state.limits.bodyBudget), 'like {"data": [{"path": "x.jpg", "encoded": "<base64>"}]}');
  const items = parseSeedRequest(body, Math.min(state.maxQueue, state.limits.maxImages));
  const predictions = await classifier.classify(items);
  const encoded = await Promise.all(
    items.map(async (item, i) => {
      if (state.echo === 'raw') return item.bytes.toString('base64');
      const { label, probs, index } = predictions[i]!;
      // The drawing is a courtesy: should it fail on an image the model could read, send the image back as is
      // rather than fail the whole request.
      const annotated = await annotateImage(item.bytes, label, probs[index]!, { maxPixels: state.maxPixels, maxEchoPixels: state.limits.maxEchoPixels, timeoutSeconds: state.limits.decodeTimeoutSeconds }).catch(() => item.bytes);
      return annotated.toString('base64');
    }),
  );
  // fromEntries defines own properties, so any path (even "__proto__") is an ordinary key of the answer.
  const answer = Object.fromEntries(
    items.map((item, i) => {
      const prediction = predictions[i]!;
      return [item.name, { pred: prediction.label, encoded: encoded[i]!, probs: probsByLabel(classifier.labels, prediction) }];
    }),
  );
  return { status: 200, body: answer, images: items.length };
}

function probsByLabel(labels: readonly string[], prediction: Prediction): Record<string, number> {
  return Object.fromEntries(labels.map((label, c) => [label, prediction.probs[c]!]));
}
