import { identifyWhileStarting, type DecodePool } from '@imgpipe/images';
import type { Progress } from '@imgpipe/kit';
import type { EarlyReject, PrepItem } from './prep-item.js';

/**
 * One row per image, so no image lands in two splits: the same source, the same file under alias paths (`./`,
 * `//`, `../x/`, symbolic links: compared by real path), or the same bytes under another name (by the sha256 of
 * the file as it is now: download-s3's local_sha256 column may be older than an edit in place). The first row is
 * kept; later ones are rejected as `duplicate`. Sets each kept item's contentSha256 (undefined when the file
 * cannot be read or is not a regular file: decoding rejects it later). Files are read on the decode threads, and on
 * this one while those start.
 */
export async function dedupeItems(
  items: readonly PrepItem[],
  threads: Promise<DecodePool>,
  progress?: Progress,
): Promise<{ kept: PrepItem[]; duplicates: EarlyReject[] }> {
  const bySource = new Map<string, PrepItem>();
  const byPath = new Map<string, PrepItem>();
  const byContent = new Map<string, PrepItem>();
  const kept: PrepItem[] = [];
  const duplicates: EarlyReject[] = [];
  const duplicate = (item: PrepItem, first: PrepItem, how: string) =>
    duplicates.push({
      item,
      reason: 'duplicate',
      detail: `${how} as line ${first.line} (${first.row.local_image ?? first.source}); kept there so it is in one split only`,
    });
  // Only regular files are read: opening a FIFO blocks for ever, /dev/zero never ends (decoding rejects both).
  const identities = await identifyWhileStarting(
    items.map((item) => item.path),
    threads,
    () => progress?.increment(),
  );
  progress?.finish();
  items.forEach((item, index) => {
    const { real, content } = identities[index]!;
    const sameSource = bySource.get(item.source);
    if (sameSource) {
      duplicate(item, sameSource, 'the same image');
      return;
    }
    const samePath = byPath.get(real);
    if (samePath) {
      duplicate(item, samePath, `the same file (${real})`);
      return;
    }
    const sameContent = content === undefined ? undefined : byContent.get(content);
    if (sameContent) {
      duplicate(item, sameContent, `the same content (sha256 ${content!.slice(0, 12)}…)`);
      return;
    }
    bySource.set(item.source, item);
    byPath.set(real, item);
    if (content !== undefined) byContent.set(content, item);
    kept.push(content === undefined ? item : { ...item, contentSha256: content });
  });
  return { kept, duplicates };
}
