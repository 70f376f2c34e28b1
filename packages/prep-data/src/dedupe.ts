import { identifyWhileStarting, type DecodePool, type FileIdentity } from '@imgpipe/images';
import type { Progress } from '@imgpipe/kit';
import type { EarlyReject, PrepItem } from './prep-item.js';

/**
 * One row per image, so no image lands in two splits: the same source, the same file under alias paths (`./`,
 * `//`, `../x/`, symbolic links: compared by real path), or the same bytes under another name (by the sha256 of
 * the file as it is now: download-s3's local_sha256 column may be older than an edit in place). The first row is
 * kept; later ones are rejected as `duplicate`. Rows are checked one by one in input order, each with its file's
 * identity (DecodePool's): before decoding (dedupeItems) or as the decodes come back (a fresh build's single pass).
 */
export class Deduper {
  private readonly bySource = new Map<string, PrepItem>();
  private readonly byPath = new Map<string, PrepItem>();
  private readonly byContent = new Map<string, PrepItem>();

  /** The row's rejection when it repeats an earlier row's image; otherwise the row, with its contentSha256, is kept. */
  check(item: PrepItem, identity: FileIdentity): { duplicate: EarlyReject } | { kept: PrepItem } {
    const { real, content } = identity;
    const sameSource = this.bySource.get(item.source);
    if (sameSource) return duplicate(item, sameSource, 'the same image');
    const samePath = this.byPath.get(real);
    if (samePath) return duplicate(item, samePath, `the same file (${real})`);
    const sameContent = content === undefined ? undefined : this.byContent.get(content);
    if (sameContent) return duplicate(item, sameContent, `the same content (sha256 ${content!.slice(0, 12)}…)`);
    this.bySource.set(item.source, item);
    this.byPath.set(real, item);
    if (content !== undefined) this.byContent.set(content, item);
    // undefined when the file cannot be read or is not a regular file: decoding rejects it.
    return { kept: content === undefined ? item : { ...item, contentSha256: content } };
  }
}

function duplicate(item: PrepItem, first: PrepItem, how: string): { duplicate: EarlyReject } {
  return {
    duplicate: {
      item,
      reason: 'duplicate',
      detail: `${how} as line ${first.line} (${first.row.local_image ?? first.source}); kept there so it is in one split only`,
    },
  };
}

/**
 * The Deduper over every row before decoding, each file read and hashed for it (on the decode threads, and on this
 * one while those start): for what needs every hash first, the up-to-date check and review decisions.
 */
export async function dedupeItems(
  items: readonly PrepItem[],
  threads: Promise<DecodePool>,
  progress?: Progress,
): Promise<{ kept: PrepItem[]; duplicates: EarlyReject[] }> {
  // Only regular files are read: opening a FIFO blocks for ever, /dev/zero never ends (decoding rejects both).
  const identities = await identifyWhileStarting(
    items.map((item) => item.path),
    threads,
    () => progress?.increment(),
  );
  progress?.finish();
  const deduper = new Deduper();
  const kept: PrepItem[] = [];
  const duplicates: EarlyReject[] = [];
  items.forEach((item, index) => {
    const checked = deduper.check(item, identities[index]!);
    if ('duplicate' in checked) duplicates.push(checked.duplicate);
    else kept.push(checked.kept);
  });
  return { kept, duplicates };
}
