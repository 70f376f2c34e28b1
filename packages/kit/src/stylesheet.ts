import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * imgpipe's shared stylesheet (assets/imgpipe.css): serve's page links it, eval-model inlines it into report.html.
 * The package owns the file so that neither tool depends on the other; it resolves the same from src/ and dist/.
 */
export const STYLESHEET_PATH = fileURLToPath(new URL('../assets/imgpipe.css', import.meta.url));

export function readStylesheet(): Promise<string> {
  return readFile(STYLESHEET_PATH, 'utf8');
}
