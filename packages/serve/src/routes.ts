import { PROMETHEUS_CONTENT_TYPE } from './metrics.js';
import { checkModelName, ready } from './route-common.js';
import { predictSeed } from './route-predict.js';
import { inferV2, modelMetadata, readiness } from './route-v2.js';
import { favicon, page, uiFile, uiModel, uiReport, uiReportPlot } from './route-ui.js';
import type { AppState, Reply, RouteContext } from './route-types.js';

export type { AppState, Reply } from './route-types.js';

interface Route {
  method: 'GET' | 'POST';
  /** A path with {param} segments. */
  pattern: string;
  handle(context: RouteContext, state: AppState): Promise<Reply>;
}

const ROUTES: readonly Route[] = [
  { method: 'POST', pattern: '/', handle: predictSeed },
  { method: 'POST', pattern: '/predict', handle: predictSeed },
  { method: 'GET', pattern: '/v2/health/live', handle: async () => ({ status: 200, body: { live: true } }) },
  { method: 'GET', pattern: '/v2/health/ready', handle: readiness },
  {
    method: 'GET',
    pattern: '/v2',
    handle: async (_c, state) => ({ status: 200, body: { name: 'imgpipe-serve', version: state.serverVersion, extensions: [] } }),
  },
  {
    method: 'GET',
    pattern: '/v2/models/{name}',
    handle: async ({ params }, state) => {
      checkModelName(state, params.name);
      return { status: 200, body: modelMetadata(state, ready(state)) };
    },
  },
  {
    method: 'GET',
    pattern: '/v2/models/{name}/ready',
    handle: async (context, state) => {
      checkModelName(state, context.params.name);
      return readiness(context, state);
    },
  },
  { method: 'POST', pattern: '/v2/models/{name}/infer', handle: inferV2 },
  {
    method: 'GET',
    pattern: '/metrics',
    handle: async (_c, state) => ({ status: 200, body: state.registry.render(), contentType: PROMETHEUS_CONTENT_TYPE }),
  },
  // The page (route-ui.ts): GET / for browsers, its files, the model card, the run's report.
  { method: 'GET', pattern: '/', handle: page },
  { method: 'GET', pattern: '/favicon.ico', handle: favicon },
  { method: 'GET', pattern: '/ui/model', handle: uiModel },
  { method: 'GET', pattern: '/ui/{file}', handle: uiFile },
  { method: 'GET', pattern: '/ui/report/report.html', handle: uiReport },
  { method: 'GET', pattern: '/ui/report/plots/{file}', handle: uiReportPlot },
];

interface RouteMatch {
  route: Route | undefined;
  /** The pattern for metrics and logs ('unknown' when nothing matched, so labels stay bounded). */
  label: string;
  params: Record<string, string>;
  /** Methods the path allows, when it matched with another method (405). */
  allowed: string[];
}

/**
 * The path of a request target, without its query: origin-form (`/predict?x`) as is, and absolute-form
 * (`http://host:8080/predict`, which RFC 9112 3.2.2 says a server must accept, e.g. from a proxy) with its scheme and
 * authority taken off. Dot segments are not resolved: routes match exact paths.
 */
export function requestPathname(target: string | undefined): string {
  const path = (target ?? '/').replace(/^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i, '');
  return path === '' || path.startsWith('?') ? '/' : path.split('?')[0]!;
}

export function matchRoute(method: string, pathname: string, routes: readonly Route[] = ROUTES): RouteMatch {
  const segments = pathname.split('/');
  const allowed: string[] = [];
  let label = 'unknown';
  for (const route of routes) {
    const parts = route.pattern.split('/');
    if (parts.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const ok = parts.every((part, i) => {
      const segment = segments[i]!;
      if (part.startsWith('{') && part.endsWith('}')) {
        if (segment === '') return false;
        try {
          params[part.slice(1, -1)] = decodeURIComponent(segment);
        } catch {
          return false;
        }
        return true;
      }
      return part === segment;
    });
    if (!ok) continue;
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, label: route.pattern, params, allowed: [] };
    allowed.push(route.method);
    label = route.pattern;
  }
  return { route: undefined, label, params: {}, allowed };
}
