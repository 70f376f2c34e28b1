import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EVAL_FILE, REPORT_FILE, weightsSha256, type ModelCard } from '@imgpipe/kit';

// The evaluation report beside a served model (REPORT_FILE) and eval-model's results naming the weights they were
// measured on (EVAL_FILE): eval-model writes both into the run directory the model/ sits in.

/** The run directory of a local model directory laid out as <run>/model, else undefined. */
export function runDirOf(modelDir: string | undefined): string | undefined {
  return modelDir !== undefined && basename(modelDir) === 'model' ? dirname(modelDir) : undefined;
}

/**
 * The report beside the served model, or why there is none. The run directory is read at each request, so it is
 * only the served model's report when the eval.json written with it names the served weights (model.sha256): a
 * run directory replaced, retrained or re-evaluated after this model was loaded holds another model's report.
 * Messages name no local path: they go to whoever asks over HTTP.
 */
export async function findReport(runDir: string | undefined, card: ModelCard | undefined): Promise<{ html: Buffer } | { problem: string }> {
  if (runDir === undefined) return { problem: "no evaluation report: the served model is not a run directory's model/" };
  const html = await readFile(join(runDir, REPORT_FILE)).catch(() => undefined);
  if (!html) return { problem: 'no evaluation report for the served model (run eval-model on its run directory)' };
  const served = Array.isArray(card?.files) ? weightsSha256(card.files) : undefined;
  if (served === undefined || (await evaluatedWeights(runDir)) !== served) {
    return {
      problem:
        'the evaluation report beside the served model is for other weights: its run directory was replaced or retrained after this model was loaded (restart serve to serve that run)',
    };
  }
  return { html };
}

async function evaluatedWeights(runDir: string): Promise<unknown> {
  try {
    return (JSON.parse(await readFile(join(runDir, EVAL_FILE), 'utf8')) as { model?: { sha256?: unknown } })?.model?.sha256;
  } catch {
    return undefined;
  }
}

/** The plot files a report links to: relative `plots/<name>.png` in src or href attributes, nothing else. */
export function referencedPlots(html: string): Set<string> {
  const names = new Set<string>();
  for (const match of html.matchAll(/\b(?:src|href)="plots\/([\w][\w.-]*\.png)"/g)) names.add(match[1]!);
  return names;
}

/**
 * The report's own policy: no script at all, pictures from this server, and its inline style blocks allowed by
 * hash (eval-model inlines the shared stylesheet so the report is one file), so the page's strict CSP holds.
 */
export function reportCsp(html: string): string {
  const hashes = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  return [
    "default-src 'none'",
    "img-src 'self'",
    `style-src ${hashes.join(' ') || "'none'"}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
