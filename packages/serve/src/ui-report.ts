import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isRegularFile } from '@imgpipe/kit';

/** The evaluation report beside a served model: eval-model writes it into the run directory the model/ sits in. */
export const REPORT_FILE = 'report.html';

/** The run directory of a local model directory laid out as <run>/model, else undefined. */
export function runDirOf(modelDir: string | undefined): string | undefined {
  return modelDir !== undefined && basename(modelDir) === 'model' ? dirname(modelDir) : undefined;
}

export async function hasReport(runDir: string | undefined): Promise<boolean> {
  return runDir !== undefined && (await isRegularFile(join(runDir, REPORT_FILE)));
}

export async function readReport(runDir: string): Promise<Buffer | undefined> {
  return readFile(join(runDir, REPORT_FILE)).catch(() => undefined);
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
  return ["default-src 'none'", "img-src 'self'", `style-src ${hashes.join(' ') || "'none'"}`, "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join('; ');
}
