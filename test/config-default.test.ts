import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { CONFIG_SCHEMA, resolveConfig, type ConfigKey } from '@imgpipe/kit';

describe('config-default.yaml', () => {
  it('documents every key with its default, and nothing else', async () => {
    const file = parse(await readFile('config-default.yaml', 'utf8')) as Record<string, Record<string, unknown>>;
    const inFile = Object.entries(file).flatMap(([section, body]) => Object.keys(body).map((leaf) => `${section}.${leaf}`));
    assert.deepEqual(inFile.sort(), Object.keys(CONFIG_SCHEMA).sort());
    for (const key of Object.keys(CONFIG_SCHEMA) as ConfigKey[]) {
      const [section, leaf] = key.split('.') as [string, string];
      assert.deepEqual(file[section]?.[leaf], CONFIG_SCHEMA[key].default, key);
    }
  });

  it('resolves as a config file without errors', async () => {
    const { origin } = await resolveConfig({ configPath: 'config-default.yaml', env: {} });
    assert.equal(origin['train.lr'], 'file');
  });
});
