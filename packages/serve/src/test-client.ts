// Test-only (excluded from the build): small HTTP helpers for the serve tests and the benchmark.
interface JsonReply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test helper; replies are arbitrary JSON that the tests read by path
  body: any;
}

export async function request(base: string, path: string, init: { method?: string; body?: unknown; raw?: string | Buffer } = {}): Promise<JsonReply> {
  const body = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  const response = await fetch(new URL(path, base), {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
  });
  const text = await response.text();
  let parsed: unknown = text;
  if ((response.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text);
  return { status: response.status, headers: response.headers, body: parsed };
}

export const seedBody = (images: { path: string; bytes: Buffer }[]) => ({
  data: images.map(({ path, bytes }) => ({ path, encoded: bytes.toString('base64') })),
});

export const v2Body = (images: Buffer[], id?: string) => ({
  ...(id ? { id } : {}),
  inputs: [{ name: 'images', shape: [images.length], datatype: 'BYTES', data: images.map((b) => b.toString('base64')) }],
});

/** A value of one metric line in Prometheus text, e.g. metric(text, 'x_total{route="/"}'). */
export function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
