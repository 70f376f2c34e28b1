import type { CsvRow } from '@imgpipe/kit';

/** One image row of the input CSV, as prep-data decodes it. */
export interface PrepItem {
  /** 1-based line of the CSV (the header is line 1). */
  line: number;
  row: CsvRow;
  /** The image's identity: s3://bucket/key when the row has them, else local_image as written. */
  source: string;
  /** local_image resolved against the working directory. */
  path: string;
  /** sha256 of the image file's bytes as read at start; set by dedupeItems. */
  contentSha256?: string;
  label: number;
  category: string;
}

export interface EarlyReject {
  item: PrepItem;
  reason: 'missing' | 'duplicate' | 'dropped-by-review';
  detail: string;
}
