import { parseJsonObject, readBodyText } from './body.js';
import type { Classifier } from './classifier.js';
import { HttpError } from './http-error.js';
import { checkModelName, ready } from './route-common.js';
import type { AppState, Reply, RouteContext } from './route-types.js';
import { parseV2InferRequest } from './request.js';

/** Open Inference Protocol (KServe V2) REST: infer with a BYTES input of base64 images. */
export async function inferV2({ request, params }: RouteContext, state: AppState): Promise<Reply> {
  checkModelName(state, params.name);
  const classifier = ready(state);
  const body = parseJsonObject(await readBodyText(request, state.maxBody, state.limits.bodyBudget), 'with "inputs" (Open Inference Protocol)');
  const parsed = parseV2InferRequest(body, Math.min(state.maxQueue, state.limits.maxImages));
  const predictions = await classifier.classify(parsed.items);
  const n = predictions.length;
  const classes = classifier.labels.length;
  const outputs = [
    { name: 'probabilities', datatype: 'FP32', shape: [n, classes], data: predictions.flatMap((p) => Array.from(p.probs)) },
    { name: 'labels', datatype: 'BYTES', shape: [n], data: predictions.map((p) => p.label) },
  ];
  const unknown = parsed.outputs?.filter((name) => !outputs.some((o) => o.name === name));
  if (unknown?.length) throw new HttpError(400, `unknown output ${JSON.stringify(unknown[0])}; outputs are "probabilities" and "labels"`);
  return {
    status: 200,
    images: n,
    body: {
      model_name: state.modelName,
      ...(state.modelVersion ? { model_version: state.modelVersion } : {}),
      ...(parsed.id !== undefined ? { id: parsed.id } : {}),
      outputs: parsed.outputs ? outputs.filter((o) => parsed.outputs!.includes(o.name)) : outputs,
    },
  };
}

export function modelMetadata(state: AppState, classifier: Classifier) {
  return {
    name: state.modelName,
    versions: state.modelVersion ? [state.modelVersion] : [],
    platform: 'imgpipe',
    inputs: [{ name: 'images', datatype: 'BYTES', shape: [-1] }],
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [-1, classifier.labels.length] },
      { name: 'labels', datatype: 'BYTES', shape: [-1] },
    ],
    parameters: { labels: classifier.labels },
  };
}

export const readiness = async (_c: RouteContext, state: AppState): Promise<Reply> => {
  const ok = Boolean(state.classifier) && !state.shuttingDown;
  return { status: ok ? 200 : 503, body: { ready: ok } };
};
