import { annotateView } from './annotate.js';
import { parseJsonObject, readBodyText } from './body.js';
import type { Prediction } from './classifier.js';
import { JSON_CONTENT_TYPE, ready } from './route-common.js';
import type { AppState, Reply, RouteContext } from './route-types.js';
import { parseSeedRequest, type ImageItem } from './request.js';

/** The seed's route: {"data":[{"path","encoded"}]} -> {path: {pred, encoded, probs}}. */
export async function predictSeed({ request }: RouteContext, state: AppState): Promise<Reply> {
  const classifier = ready(state);
  const body = parseJsonObject(
    await readBodyText(request, state.maxBody, state.limits.bodyBudget),
    'like {"data": [{"path": "x.jpg", "encoded": "<base64>"}]}',
  );
  const items = parseSeedRequest(body, Math.min(state.maxQueue, state.limits.maxImages));
  if (state.echo === 'raw') {
    const predictions = await classifier.classify(items);
    return answer(
      classifier.labels,
      items,
      predictions,
      items.map((item) => item.bytes.toString('base64')),
    );
  }
  const predictions = await classifier.classifyWithViews(items);
  const encoded = await Promise.all(
    predictions.map(async ({ view, format, label, probs, index }, i) => {
      if (!view) return items[i]!.bytes.toString('base64');
      try {
        return await annotateView(view, format, label, probs[index]!);
      } catch {
        // The drawing is a courtesy: should it fail, send the image back as is rather than fail the whole request.
        return items[i]!.bytes.toString('base64');
      } finally {
        view.release?.();
      }
    }),
  );
  return answer(classifier.labels, items, predictions, encoded);
}

function answer(labels: readonly string[], items: readonly ImageItem[], predictions: readonly Prediction[], encoded: readonly string[]): Reply {
  // The JSON is put together as text around each echo: base64 needs no escaping, and JSON.stringify would scan
  // every character of it (tens of KB per image, a tenth of a millisecond or more). Each key is its own (paths are
  // unique), so "__proto__" is an ordinary key, as with Object.fromEntries.
  const entries = items.map((item, i) => {
    const prediction = predictions[i]!;
    const probs = JSON.stringify(probsByLabel(labels, prediction));
    return `${JSON.stringify(item.name)}:{"pred":${JSON.stringify(prediction.label)},"encoded":"${encoded[i]!}","probs":${probs}}`;
  });
  return { status: 200, body: `{${entries.join(',')}}`, contentType: JSON_CONTENT_TYPE, images: items.length };
}

function probsByLabel(labels: readonly string[], prediction: Prediction): Record<string, number> {
  return Object.fromEntries(labels.map((label, c) => [label, prediction.probs[c]!]));
}
