import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, RateWindow, Registry } from './metrics.js';

describe('metrics registry', () => {
  it('renders counters, gauges and histograms in the Prometheus text format', () => {
    const registry = new Registry();
    const requests = registry.register(new Counter('x_requests_total', 'Requests.'));
    const depth = registry.register(new Gauge('x_depth', 'Depth.', () => 7));
    const latency = registry.register(new Histogram('x_seconds', 'Latency.', [0.1, 1]));
    requests.inc({ route: '/predict', status: '200' });
    requests.inc({ status: '200', route: '/predict' }, 2);
    requests.inc({ route: '/a"b', status: '404' });
    latency.observe(0.05, { route: '/' });
    latency.observe(0.5, { route: '/' });
    latency.observe(5, { route: '/' });
    assert.equal(depth.get(), 7);
    const text = registry.render();
    assert.match(text, /^# HELP x_requests_total Requests\.\n# TYPE x_requests_total counter\n/);
    assert.match(text, /^x_requests_total\{route="\/predict",status="200"\} 3$/m);
    assert.match(text, /^x_requests_total\{route="\/a\\"b",status="404"\} 1$/m);
    assert.match(text, /^# TYPE x_depth gauge\nx_depth 7$/m);
    assert.match(text, /^x_seconds_bucket\{route="\/",le="0.1"\} 1$/m);
    assert.match(text, /^x_seconds_bucket\{route="\/",le="1"\} 2$/m);
    assert.match(text, /^x_seconds_bucket\{route="\/",le="\+Inf"\} 3$/m);
    assert.match(text, /^x_seconds_sum\{route="\/"\} 5.55$/m);
    assert.match(text, /^x_seconds_count\{route="\/"\} 3$/m);
    assert.ok(text.endsWith('\n'));
    assert.throws(() => registry.register(new Gauge('x_depth', 'again')), /twice/);
  });

  it('computes a rate over a sliding window', () => {
    let now = 1_000_000;
    const rate = new RateWindow(10, () => now);
    rate.add(50);
    now += 1000;
    rate.add(50);
    assert.equal(rate.perSecond(), 10);
    now += 9_000; // the first second has left the window
    assert.equal(rate.perSecond(), 5);
    now += 60_000;
    assert.equal(rate.perSecond(), 0);
  });
});
