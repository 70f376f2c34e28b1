import type { Classifier } from './classifier.js';
import { HttpError, UnavailableError } from './http-error.js';
import type { AppState } from './route-types.js';

/** What a JSON answer is sent as, whether the server serializes it or the route hands it over as text. */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The classifier, or 503 while the model loads. */
export const ready = (state: AppState): Classifier => {
  if (!state.classifier) throw new UnavailableError(state.shuttingDown ? 'shutting down' : 'the model is still loading');
  return state.classifier;
};

export const checkModelName = (state: AppState, name: string | undefined) => {
  if (name !== state.modelName)
    throw new HttpError(404, `unknown model ${JSON.stringify(name)}; this server serves ${JSON.stringify(state.modelName)}`);
};
