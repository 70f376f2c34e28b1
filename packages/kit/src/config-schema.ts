import type { ValueSpec, ValueType } from './values.js';

/**
 * Every configuration key: the seed's sections and keys, plus the few imgpipe adds. This table drives the
 * defaults, the YAML validation, the environment variables (IMGPIPE_<SECTION>_<KEY>) and the kebab-case flags.
 */
interface KeySpec extends ValueSpec {
  default: string | number | boolean | number[];
  doc: string;
  /** The command-line flag, when it is not the leaf key in kebab-case. */
  flag?: string;
  aliases?: string[];
  /** Standard environment variables read after IMGPIPE_<SECTION>_<KEY>. */
  env?: string[];
  /** Never a command-line flag (it would show in `ps`): environment, config file or the AWS chain only. */
  secret?: boolean;
}

export const DEVICES = ['auto', 'cpu', 'wasm', 'webgpu', 'cuda'] as const;

export const CONFIG_SCHEMA = {
  'project.name': { type: 'string', default: 'dogs-vs-cats', doc: 'Name recorded in run.json and model cards.', flag: 'project-name' },
  'project.debug_logs': { type: 'bool', default: false, doc: 'Verbose logs and stack traces.', flag: 'debug' },

  'data.download_path': {
    type: 'string',
    default: 'data/',
    doc: 'Where download-s3 puts images (--dest).',
    flag: 'dest',
    aliases: ['download-path'],
  },
  'data.download_data': { type: 'bool', default: true, doc: 'Download from S3; false: rows must already carry local_image.' },
  'data.batch_size': { type: 'int', default: 32, min: 1, doc: 'Batch size for feature extraction and head training.' },
  'data.img_dimensions': { type: 'int', default: 224, min: 8, max: 4096, doc: 'Square side the images are resized to.' },
  'data.train_pct': { type: 'number', default: 0.7, min: 0, max: 1, doc: 'Share of each class in the train split.' },
  'data.val_pct': { type: 'number', default: 0.15, min: 0, max: 1, doc: 'Share of each class in the validation split.' },
  'data.test_pct': { type: 'number', default: 0.15, min: 0, max: 1, doc: 'Share of each class in the test split.' },
  'data.seed': { type: 'int', default: 42, min: 0, doc: 'Seed of the train/val/test split.', flag: 'split-seed' },
  'data.images_csv': { type: 'string', default: '', doc: 'The images CSV: a path, "-" for stdin, or s3://bucket/key.csv.', flag: 'csv' },

  'aws.bucket_name': {
    type: 'string',
    default: '',
    doc: 'Bucket for results (and the images CSV when given as a key).',
    flag: 'bucket',
    aliases: ['bucket-name'],
  },
  'aws.aws_access_key_id': { type: 'string', default: '', doc: 'Access key; empty: the standard AWS chain (env, profile).', secret: true },
  'aws.aws_secret_access_key': { type: 'string', default: '', doc: 'Secret key; empty: the standard AWS chain.', secret: true },
  'aws.aws_default_region': { type: 'string', default: 'us-east-1', doc: 'Region.', flag: 'region', env: ['AWS_REGION', 'AWS_DEFAULT_REGION'] },
  'aws.results_upload_path': {
    type: 'string',
    default: 'results/',
    doc: 'Key prefix upload-s3 writes under.',
    flag: 'prefix',
    aliases: ['results-upload-path'],
  },
  'aws.endpoint': {
    type: 'string',
    default: '',
    doc: 'S3-compatible endpoint URL (path-style addressing); empty: AWS.',
    env: ['S3_ENDPOINT', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'],
  },

  'train.epochs': { type: 'int', default: 3, min: 1, doc: 'Epochs per trial.' },
  'train.lr': { type: 'number[]', default: [0.001, 0.005, 0.01], min: 0, exclusiveMin: true, doc: 'Learning rates to sweep.' },
  'train.layer_size': { type: 'int[]', default: [256, 512, 1024], min: 1, doc: 'Hidden layer sizes of the head to sweep.' },
  'train.device': { type: 'string', default: 'auto', choices: DEVICES, doc: 'auto, cpu, wasm, webgpu or cuda.' },
  'train.hyper_param_runs': { type: 'int', default: 0, min: 0, doc: 'Trial budget for --strategy random; 0: every combination.' },
  'train.strategy': {
    type: 'string',
    default: 'grid',
    choices: ['grid', 'random'],
    doc: 'grid: every combination; random: hyper_param_runs of them.',
  },
  'train.backbone': {
    type: 'string',
    default: 'resnet50',
    doc: 'Built-in name (resnet50, resnet50-int8, mobilenetv2, efficientnet-lite4: train --list-backbones), .onnx file, TF.js model.json, or URL.',
  },
  'train.seed': { type: 'int', default: 42, min: 0, doc: 'Seed for initialisation, shuffling and random search.', flag: 'seed' },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_SCHEMA;

type ValueOf<T extends ValueType> = T extends 'string' ? string : T extends 'int' | 'number' ? number : T extends 'bool' ? boolean : number[];

type Sections = { [K in ConfigKey as K extends `${infer S}.${string}` ? S : never]: true };

/** The resolved configuration, one object per section, keys as in the YAML. */
export type ImgpipeConfig = {
  [S in keyof Sections]: {
    [K in ConfigKey as K extends `${S & string}.${infer L}` ? L : never]: ValueOf<(typeof CONFIG_SCHEMA)[K]['type']>;
  };
};

export function specOf(key: ConfigKey): KeySpec {
  return CONFIG_SCHEMA[key];
}

export function flagOf(key: ConfigKey): string {
  const spec: KeySpec = CONFIG_SCHEMA[key];
  return spec.flag ?? key.split('.')[1]!.replaceAll('_', '-');
}

export function envNameOf(key: ConfigKey): string {
  return `IMGPIPE_${key.replace('.', '_').toUpperCase()}`;
}
