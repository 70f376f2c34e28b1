import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { PLOTS_DIR } from '@imgpipe/kit';
import { HttpError } from './http-error.js';
import type { AppState, Reply, RouteContext } from './route-types.js';
import { staticFile, type StaticFile, type UiState } from './ui-assets.js';
import { findReport, referencedPlots, reportCsp, runDirOf } from './ui-report.js';

const REPORT_URL = 'ui/report/report.html';

function uiOf(state: AppState): UiState {
  if (!state.ui) throw new HttpError(404, 'the page is off (serve --no-ui); the JSON routes are POST / and /predict, /v2/..., GET /metrics');
  return state.ui;
}

/** 200 with the file, or 304 when the browser already holds this version (If-None-Match). */
function fileReply(request: IncomingMessage, file: StaticFile, headers: Record<string, string> = {}): Reply {
  const all = { etag: file.etag, 'cache-control': 'no-cache', ...headers };
  const fresh = request.headers['if-none-match']?.split(/\s*,\s*/).includes(file.etag);
  return { status: fresh ? 304 : 200, body: fresh ? Buffer.alloc(0) : file.body, contentType: file.contentType, headers: all };
}

/**
 * GET /: the page for browsers (Accept: text/html), 404 for them with --no-ui; other clients get what they got
 * before the page existed (405, use POST).
 */
export async function page({ request }: RouteContext, state: AppState): Promise<Reply> {
  if (!/\btext\/html\b/.test(request.headers.accept ?? '')) {
    throw new HttpError(405, `${request.method} is not allowed on /; use POST`, { headers: { allow: 'POST', vary: 'Accept' } });
  }
  return fileReply(request, uiOf(state).assets.page, { vary: 'Accept' });
}

/** GET /favicon.ico: none, said without an error, so browsers viewing the report or JSON log nothing. */
export async function favicon(_context: RouteContext, state: AppState): Promise<Reply> {
  uiOf(state);
  return { status: 204, body: Buffer.alloc(0), contentType: 'image/x-icon', headers: { 'cache-control': 'max-age=86400' } };
}

/** GET /ui/{file}: only the page's own files, by exact name. */
export async function uiFile({ request, params }: RouteContext, state: AppState): Promise<Reply> {
  const { files } = uiOf(state).assets;
  const file = files.get(params.file ?? '');
  if (!file) throw new HttpError(404, `no file ${JSON.stringify(params.file)} in the page (it has ${[...files.keys()].join(', ')})`);
  return fileReply(request, file);
}

/** GET /ui/model: what the page shows beside the pictures, from card.json, and where to read more. */
export async function uiModel(_context: RouteContext, state: AppState): Promise<Reply> {
  const ui = uiOf(state);
  if (!state.classifier || !ui.model) throw new HttpError(503, 'the model is still loading', { headers: { 'retry-after': '1' } });
  const { card, dir } = ui.model;
  const accuracy = card?.metrics?.test_accuracy;
  return {
    status: 200,
    headers: { 'cache-control': 'no-store' },
    body: {
      name: state.modelName,
      labels: state.classifier.labels,
      backbone: card?.backbone?.name ?? null,
      input_size: card?.input?.size ?? null,
      test_accuracy: typeof accuracy === 'number' ? accuracy : null,
      trained: typeof card?.created === 'string' ? card.created : null,
      max_body: state.maxBody,
      links: {
        metadata: `v2/models/${encodeURIComponent(state.modelName)}`,
        metrics: 'metrics',
        report: 'html' in (await findReport(runDirOf(dir), card)) ? REPORT_URL : null,
      },
    },
  };
}

/** The served model's report (see findReport), or a 404 saying why there is none. */
async function servedReport(state: AppState): Promise<{ dir: string; html: Buffer }> {
  const model = uiOf(state).model;
  const dir = runDirOf(model?.dir);
  const found = await findReport(dir, model?.card);
  if ('problem' in found || dir === undefined) throw new HttpError(404, 'problem' in found ? found.problem : 'no evaluation report');
  return { dir, html: found.html };
}

/** GET /ui/report/report.html: the run's report, read-only, under its own script-free policy. */
export async function uiReport({ request }: RouteContext, state: AppState): Promise<Reply> {
  const { html } = await servedReport(state);
  return fileReply(request, staticFile(html, 'text/html; charset=utf-8'), { 'content-security-policy': reportCsp(html.toString('utf8')) });
}

/** GET /ui/report/plots/{file}: a PNG the report links to, and nothing else from the run directory. */
export async function uiReportPlot({ request, params }: RouteContext, state: AppState): Promise<Reply> {
  const { dir, html } = await servedReport(state);
  const name = params.file ?? '';
  if (!referencedPlots(html.toString('utf8')).has(name)) throw new HttpError(404, `no plot ${JSON.stringify(name)} in the evaluation report`);
  const png = await readFile(join(dir, PLOTS_DIR, name)).catch(() => undefined);
  if (!png) throw new HttpError(404, `the report links plots/${name}, which is missing beside it`);
  return fileReply(request, staticFile(png, 'image/png'));
}
