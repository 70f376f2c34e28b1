/**
 * A small Prometheus registry (text exposition format 0.0.4): counters and gauges with labels, histograms,
 * and gauges read from a callback at scrape time. Enough for one server; no dependency needed.
 */
type Labels = Record<string, string>;

interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

const escapeLabel = (value: string) => value.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('"', '\\"');
const formatLabels = (labels: Labels) => {
  const entries = Object.entries(labels);
  return entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
};
const formatValue = (value: number) => (Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN');
const keyOf = (labels: Labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));

export class Counter implements Metric {
  readonly type = 'counter';
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = keyOf(labels);
    const entry = this.#values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.#values.set(key, entry);
  }
  get(labels: Labels = {}): number {
    return this.#values.get(keyOf(labels))?.value ?? 0;
  }
  render(): string[] {
    return [...this.#values.values()].map(({ labels, value }) => `${this.name}${formatLabels(labels)} ${formatValue(value)}`);
  }
}

export class Gauge implements Metric {
  readonly type = 'gauge';
  #value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly collect?: () => number,
  ) {}
  set(value: number): void {
    this.#value = value;
  }
  get(): number {
    return this.collect ? this.collect() : this.#value;
  }
  render(): string[] {
    return [`${this.name} ${formatValue(this.get())}`];
  }
}

export class Histogram implements Metric {
  readonly type = 'histogram';
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const key = keyOf(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    this.buckets.forEach((bound, i) => {
      if (value <= bound) series.counts[i]! += 1;
    });
    series.sum += value;
    series.count += 1;
  }
  count(labels: Labels = {}): number {
    return this.#series.get(keyOf(labels))?.count ?? 0;
  }
  render(): string[] {
    const lines: string[] = [];
    for (const { labels, counts, sum, count } of this.#series.values()) {
      this.buckets.forEach((bound, i) => {
        lines.push(`${this.name}_bucket${formatLabels({ ...labels, le: formatValue(bound) })} ${counts[i]}`);
      });
      lines.push(`${this.name}_bucket${formatLabels({ ...labels, le: '+Inf' })} ${count}`);
      lines.push(`${this.name}_sum${formatLabels(labels)} ${formatValue(sum)}`);
      lines.push(`${this.name}_count${formatLabels(labels)} ${count}`);
    }
    return lines;
  }
}

export class Registry {
  readonly #metrics: Metric[] = [];
  register<M extends Metric>(metric: M): M {
    if (this.#metrics.some((m) => m.name === metric.name)) throw new Error(`metric ${metric.name} registered twice`);
    this.#metrics.push(metric);
    return metric;
  }
  render(): string {
    const out: string[] = [];
    for (const metric of this.#metrics) {
      out.push(
        `# HELP ${metric.name} ${metric.help.replaceAll('\\', '\\\\').replaceAll('\n', '\\n')}`,
        `# TYPE ${metric.name} ${metric.type}`,
        ...metric.render(),
      );
    }
    return `${out.join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Events per second over a sliding window (one-second slots), e.g. images/s over the last 10 s. */
export class RateWindow {
  readonly #slots: number[];
  #slot = -1;
  constructor(
    readonly seconds = 10,
    private readonly now = () => Date.now(),
  ) {
    this.#slots = new Array<number>(seconds).fill(0);
  }
  add(count: number): void {
    this.#advance();
    this.#slots[this.#slot % this.seconds]! += count;
  }
  perSecond(): number {
    this.#advance();
    return this.#slots.reduce((a, b) => a + b, 0) / this.seconds;
  }
  #advance(): void {
    const current = Math.floor(this.now() / 1000);
    if (this.#slot < 0) this.#slot = current;
    const gap = Math.min(current - this.#slot, this.seconds);
    for (let i = 1; i <= gap; i += 1) this.#slots[(this.#slot + i) % this.seconds] = 0;
    this.#slot = Math.max(this.#slot, current);
  }
}
