// serve's page: plain TypeScript compiled by `tsc -b` (ui/tsconfig.json) to dist/ui/app.js, no library. It calls
// the JSON routes a program would: GET ui/model (the card) and POST v2/models/{name}/infer, one request per image.
// URLs are relative, so the page also works behind a proxy that mounts serve under a path.

interface ModelInfo {
  name: string;
  labels: string[];
  backbone: string | null;
  input_size: number | null;
  test_accuracy: number | null;
  trained: string | null;
  max_body: number;
  links: { metadata: string; metrics: string; report: string | null };
}

interface ApiError {
  error?: string;
  reason?: string;
}

interface V2Output {
  name: string;
  data: (number | string)[];
}

type Child = Node | string;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const percent = (p: number) => `${(p * 100).toFixed(1)} %`;
const size = (bytes: number) => (bytes < 1024 * 1024 ? `${Math.round(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`);
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

function setStatus(text: string, bad = false): void {
  const status = byId<HTMLParagraphElement>('status');
  status.textContent = text;
  status.classList.toggle('bad', bad);
}

/** The model card; retried while the model loads (503) or the server is out of reach. */
async function fetchModel(): Promise<ModelInfo> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const response = await fetch('ui/model', { headers: { accept: 'application/json' } });
      const body = (await response.json()) as ModelInfo & ApiError;
      if (response.ok) return body;
      setStatus(`${body.error ?? `the server answered ${response.status}`}; trying again…`, response.status !== 503);
    } catch (error) {
      setStatus(`Cannot reach the server (${messageOf(error)}); trying again…`, true);
    }
    await sleep(Math.min(5000, 500 * attempt));
  }
}

function showModel(model: ModelInfo): void {
  byId('title-name').textContent = model.name;
  document.title = `${model.name}: try the model`;
  const rows: [string, Child][] = [
    ['Name', model.name],
    ['Labels', model.labels.join(', ')],
    ['Backbone', model.backbone ?? 'unknown'],
    ['Input size', model.input_size ? `${model.input_size} × ${model.input_size} px` : 'unknown'],
    ['Test accuracy', model.test_accuracy === null ? 'not evaluated' : percent(model.test_accuracy)],
  ];
  if (model.trained) {
    const time = el('time', '', new Date(model.trained).toLocaleString());
    time.dateTime = model.trained;
    rows.push(['Trained', time]);
  }
  byId('card').replaceChildren(...rows.flatMap(([term, value]) => [el('dt', '', term), el('dd', '', value)]));
  const link = (href: string, text: string) => {
    const a = el('a', '', text);
    a.href = href;
    return el('li', '', a);
  };
  const links = [link(model.links.metadata, 'Model metadata (Open Inference Protocol)'), link(model.links.metrics, 'Server metrics (Prometheus)')];
  if (model.links.report) links.push(link(model.links.report, 'Evaluation report'));
  byId('links').replaceChildren(...links);
}

function readBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^[^,]*,/, ''));
    reader.onerror = () => reject(reader.error ?? new Error('cannot read the file'));
    reader.readAsDataURL(file);
  });
}

/** What to tell a person about a refusal; the server's own message goes under it. */
function explain(status: number, body: ApiError, retryAfter: string | null): string {
  if (status === 400 && body.reason === 'not-an-image') return 'Not an image the server can read.';
  if (status === 400 && body.reason === 'unreadable') return 'The image could not be decoded: the file is cut short or damaged.';
  if (status === 400 && body.reason === 'decompression-bomb') return 'The image has more pixels than this server accepts.';
  if (status === 413) return 'Too large for the server.';
  if (status === 503) return `The server is busy; try again${retryAfter ? ` in ${retryAfter} s` : ''}.`;
  return `The server refused it (HTTP ${status}).`;
}

function serverMs(header: string | null): number | null {
  const match = /dur=([\d.]+)/.exec(header ?? '');
  return match ? Number(match[1]) : null;
}

class ResultCard {
  readonly item = el('li', 'card panel');
  private readonly body = el('div', 'result');

  constructor(private readonly file: File) {
    this.item.dataset.file = file.name;
    if (file.type.startsWith('image/')) {
      const picture = el('img');
      picture.src = URL.createObjectURL(file);
      picture.alt = file.name;
      this.item.append(picture);
    } else {
      this.item.classList.add('no-picture');
    }
    this.item.append(this.body);
  }

  private show(state: string, ...children: Child[]): void {
    this.item.dataset.state = state;
    this.body.replaceChildren(el('h3', '', this.file.name), ...children);
  }

  refuse(message: string, detail?: string, retry?: () => void): void {
    const error = el('p', 'error', message);
    error.setAttribute('role', 'alert');
    const parts: Child[] = [error];
    if (detail) parts.push(el('p', 'muted detail', `Server: ${detail}`));
    if (retry) {
      const button = el('button', '', 'Try again');
      button.type = 'button';
      button.addEventListener('click', retry);
      parts.push(button);
    }
    this.show('error', ...parts);
  }

  async classify(model: ModelInfo): Promise<void> {
    const file = this.file;
    // Base64 in JSON: 4 bytes per 3, plus the envelope.
    const encodedSize = Math.ceil(file.size / 3) * 4 + 200;
    if (encodedSize > model.max_body) {
      this.refuse(
        `Too large: ${size(file.size)}; this server takes images up to about ${size((model.max_body - 200) * 0.75)}.`,
        `request bodies over ${model.max_body} bytes are refused (serve --max-body)`,
      );
      return;
    }
    this.show('pending', el('p', 'muted', 'Classifying…'));
    const retry = () => void this.classify(model);
    try {
      const request = { id: file.name, inputs: [{ name: 'images', shape: [1], datatype: 'BYTES', data: [await readBase64(file)] }] };
      const started = performance.now();
      const response = await fetch(`${model.links.metadata}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(request),
      });
      const roundTrip = performance.now() - started;
      const body = (await response.json().catch(() => ({}))) as ApiError & { outputs?: V2Output[] };
      if (!response.ok) {
        const busy = response.status === 503;
        this.refuse(explain(response.status, body, response.headers.get('retry-after')), body.error, busy ? retry : undefined);
        return;
      }
      const probs = body.outputs?.find((o) => o.name === 'probabilities')?.data as number[] | undefined;
      const label = body.outputs?.find((o) => o.name === 'labels')?.data[0] as string | undefined;
      if (!probs || label === undefined) throw new Error('the answer has no probabilities or labels output');
      this.showAnswer(model.labels, probs, label, serverMs(response.headers.get('server-timing')), roundTrip);
    } catch (error) {
      this.refuse(`No answer from the server: ${messageOf(error)}.`, undefined, retry);
    }
  }

  private showAnswer(labels: string[], probs: number[], label: string, server: number | null, roundTrip: number): void {
    const top = probs[labels.indexOf(label)] ?? 0;
    const answer = el('p', 'answer', 'Predicted: ', el('strong', 'label', label), ` ${percent(top)}`);
    const rows = labels.map((name, c) => {
      const p = probs[c] ?? 0;
      const fill = el('span', 'fill');
      fill.style.width = `${(p * 100).toFixed(2)}%`;
      const bar = el('span', 'bar', fill);
      bar.setAttribute('aria-hidden', 'true');
      const row = el('li', name === label ? 'top' : '', el('span', 'name', name), bar, el('span', 'value', percent(p)));
      row.dataset.label = name;
      row.dataset.prob = String(p);
      return row;
    });
    const probsList = el('ul', 'probs', ...rows);
    probsList.setAttribute('aria-label', 'Probability per class');
    const time = server === null ? `round trip ${roundTrip.toFixed(0)} ms` : `server ${server.toFixed(1)} ms · round trip ${roundTrip.toFixed(0)} ms`;
    this.show('done', answer, probsList, el('p', 'muted time', time));
  }
}

function classifyAll(model: ModelInfo, files: Iterable<File>): void {
  const results = byId<HTMLOListElement>('results');
  for (const file of files) {
    const card = new ResultCard(file);
    results.prepend(card.item);
    void card.classify(model);
  }
}

function wireInputs(model: ModelInfo): void {
  const input = byId<HTMLInputElement>('file');
  input.disabled = false;
  input.addEventListener('change', () => {
    if (input.files?.length) classifyAll(model, [...input.files]);
    input.value = '';
  });
  const drop = byId('drop');
  document.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  document.addEventListener('dragleave', (event) => {
    if (event.relatedTarget === null) drop.classList.remove('over');
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer?.files.length) classifyAll(model, [...event.dataTransfer.files]);
  });
  document.addEventListener('paste', (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length) {
      event.preventDefault();
      classifyAll(model, files);
    }
  });
}

async function main(): Promise<void> {
  const model = await fetchModel();
  showModel(model);
  wireInputs(model);
  setStatus(`Ready: ${model.labels.length} classes. Drop, paste or choose images.`);
  document.documentElement.dataset.ready = String(Math.round(performance.now()));
}

void main();
