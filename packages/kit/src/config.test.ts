import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from './config.js';
import { UsageError } from './errors.js';

describe('resolveConfig', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imgpipe-config-'));
    file = join(dir, 'config.yaml');
    await writeFile(file, 'data:\n  img_dimensions: 128\n  batch_size: 16\ntrain:\n  lr: [0.1, 0.2]\n  epochs: 7\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('uses defaults when nothing is given', async () => {
    const { config, origin } = await resolveConfig({ env: {} });
    assert.equal(config.data.img_dimensions, 224);
    assert.deepEqual(config.train.layer_size, [256, 512, 1024]);
    assert.equal(origin['data.img_dimensions'], 'default');
  });

  it('applies flags > env > file > defaults', async () => {
    const { config, origin } = await resolveConfig({
      configPath: file,
      env: { IMGPIPE_DATA_IMG_DIMENSIONS: '96', IMGPIPE_TRAIN_EPOCHS: '5' },
      flags: { 'img-dimensions': '64', 'layer-size': '8,16' },
    });
    assert.equal(config.data.img_dimensions, 64);
    assert.equal(origin['data.img_dimensions'], 'flag');
    assert.equal(config.train.epochs, 5);
    assert.equal(origin['train.epochs'], 'env');
    assert.equal(config.data.batch_size, 16);
    assert.equal(origin['data.batch_size'], 'file');
    assert.deepEqual(config.train.lr, [0.1, 0.2]);
    assert.deepEqual(config.train.layer_size, [8, 16]);
    assert.equal(config.data.train_pct, 0.7);
  });

  it('reads the standard variables for endpoint and region', async () => {
    const { config } = await resolveConfig({ env: { S3_ENDPOINT: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-1' } });
    assert.equal(config.aws.endpoint, 'http://127.0.0.1:9000');
    assert.equal(config.aws.aws_default_region, 'eu-west-1');
  });

  it('rejects unknown keys and wrong types, naming each', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'data:\n  img_dimension: 3\n  train_pct: lots\nmodel:\n  x: 1\n');
    await assert.rejects(resolveConfig({ configPath: bad, env: {}, flags: { epochs: 'x' } }), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /unknown key 'data\.img_dimension'/);
      assert.match(error.message, /unknown section 'model'/);
      assert.match(error.message, /data\.train_pct to be a number/);
      assert.match(error.message, /--epochs to be an integer/);
      assert.equal(error.exitCode, 2);
      return true;
    });
  });
});
