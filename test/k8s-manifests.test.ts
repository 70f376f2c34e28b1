// deploy/k8s without a cluster: every manifest parses and validates against the Kubernetes API schemas
// (kubernetes-models; the Argo Workflow against @kubernetes-models/argo-workflows; KServe's InferenceService only
// in its metadata and containers), containers carry no unknown fields, and every imgpipe command the manifests and
// the Dockerfile run uses a tool and flags that the tool's --help documents. Needs the built bins (`npx tsc -b`).
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1';
import { Workflow } from '@kubernetes-models/argo-workflows/argoproj.io/v1alpha1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { Container, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const K8S = join(ROOT, 'deploy/k8s');
const BINS: Record<string, string> = {
  'download-s3': 'packages/download-s3/bin/download-s3.js',
  'prep-data': 'packages/prep-data/bin/prep-data.js',
  train: 'packages/train/bin/train.js',
  'eval-model': 'packages/eval/bin/eval-model.js',
  serve: 'packages/serve/bin/serve.js',
  'upload-s3': 'packages/upload-s3/bin/upload-s3.js',
};
const MODELS: Record<string, { new (data: never): { validate(): void } }> = {
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
  'batch/v1/Job': Job,
  'apps/v1/Deployment': Deployment,
  'argoproj.io/v1alpha1/Workflow': Workflow,
};

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML manifests of many kinds, walked by path in the assertions; the schemas check their shape
type Yaml = any;
type Doc = { apiVersion: string; kind: string; metadata: { name?: string; generateName?: string }; spec: Record<string, Yaml> } & Record<
  string,
  Yaml
>;
const docs: { file: string; doc: Doc }[] = [];
const flagsOf = new Map<string, Set<string>>();

before(async () => {
  for (const file of (await readdir(K8S)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const parsed of parseAllDocuments(await readFile(join(K8S, file), 'utf8'))) {
      assert.deepEqual(parsed.errors, [], `${file}: YAML errors`);
      docs.push({ file, doc: parsed.toJS() as Doc });
    }
  }
  await Promise.all(
    Object.entries(BINS).map(async ([tool, bin]) => {
      const help = await execa(process.execPath, [join(ROOT, bin), '--help']);
      flagsOf.set(tool, new Set(help.stdout.match(/--[a-z][a-z0-9-]*/g)));
    }),
  );
});

/** Every container of a manifest: pod templates, Argo templates, KServe predictors. */
function containersOf(doc: Doc): Record<string, Yaml>[] {
  if (doc.kind === 'Workflow')
    return doc.spec.templates.filter((t: { container?: unknown }) => t.container).map((t: { container: unknown }) => t.container);
  if (doc.kind === 'InferenceService') return doc.spec.predictor.containers;
  return doc.spec.template?.spec?.containers ?? [];
}

/** The imgpipe invocations in a container's command line or shell script: [tool, ...its words]. */
function invocations(words: string[]): string[][] {
  const text = words[0] === 'sh' && words[1] === '-c' ? words.slice(2).join(' ') : words.join(' ');
  const out: string[][] = [];
  let current: string[] | undefined;
  for (const token of text.split(/\s+|&&|;|\||\{|\}|>/)) {
    if (token === '') continue;
    if (Object.hasOwn(BINS, token)) {
      current = [token];
      out.push(current);
    } else if (['exec', 'cd', 'head', 'tail', 'node', 'sleep'].includes(token)) current = undefined;
    else current?.push(token);
  }
  return out;
}

function checkInvocation(where: string, [tool, ...words]: string[]): void {
  const documented = flagsOf.get(tool!)!;
  for (const word of words.filter((w) => w.startsWith('--'))) {
    const flag = word.split('=')[0]!;
    assert.ok(documented.has(flag) || documented.has(flag.replace(/^--no-/, '--')), `${where}: ${tool} ${flag} is not in \`${tool} --help\``);
  }
}

describe('deploy/k8s manifests (validated offline; not run on a cluster)', () => {
  it('every document validates against its API schema', () => {
    assert.ok(docs.length >= 8, `${docs.length} documents`);
    for (const { file, doc } of docs) {
      const where = `${file}: ${doc.kind} ${doc.metadata?.name ?? doc.metadata?.generateName}`;
      if (doc.kind === 'InferenceService') {
        assert.equal(doc.apiVersion, 'serving.kserve.io/v1beta1', where);
        new ObjectMeta(doc.metadata as never).validate();
        for (const container of containersOf(doc)) new Container(container as never).validate();
        continue;
      }
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      assert.ok(Model, `${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
      assert.doesNotThrow(() => new Model(doc as never).validate(), where);
    }
  });

  it('a schema violation is caught (the check can fail)', () => {
    const job = structuredClone(docs.find((d) => d.doc.kind === 'Job')!.doc);
    job.spec.completions = 'eight';
    assert.throws(() => new Job(job as never).validate(), /completions/);
  });

  it('containers hold only fields the Container schema defines', async () => {
    const declared = await readFile(join(ROOT, 'node_modules/kubernetes-models/v1/Container.d.ts'), 'utf8');
    const fields = new Set([...declared.matchAll(/^\s+"?([a-zA-Z]+)"?\??:/gm)].map((m) => m[1]!));
    assert.ok(fields.has('readinessProbe') && fields.has('volumeMounts'));
    for (const { file, doc } of docs) {
      for (const container of containersOf(doc)) {
        for (const key of Object.keys(container))
          assert.ok(fields.has(key), `${file}: container ${container.name ?? ''} has an unknown field ${key}`);
      }
    }
  });

  it('every imgpipe command in the manifests and the Dockerfile is a tool with flags its --help documents', async () => {
    let checked = 0;
    for (const { file, doc } of docs) {
      for (const container of containersOf(doc)) {
        const words = [...(container.command ?? []), ...(container.args ?? [])].map(String);
        const calls = invocations(words);
        assert.ok(calls.length > 0, `${file}: container ${container.name ?? container.image} runs no imgpipe tool: ${words.join(' ')}`);
        for (const call of calls) {
          checkInvocation(file, call);
          checked += 1;
        }
      }
    }
    const dockerfile = await readFile(join(K8S, 'Dockerfile'), 'utf8');
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    for (const call of invocations(cmd)) {
      checkInvocation('Dockerfile CMD', call);
      checked += 1;
    }
    assert.ok(checked >= 12, `${checked} invocations checked`);
    assert.throws(() => checkInvocation('self-test', ['train', '--no-such-flag']), /not in `train --help`/);
  });

  it('docs/scale-out.md documents every manifest, and every train task they run', async () => {
    const text = await readFile(join(ROOT, 'docs', 'scale-out.md'), 'utf8');
    for (const file of await readdir(K8S)) assert.ok(text.includes(`\`${file}\``), `docs/scale-out.md does not name deploy/k8s/${file}`);
    assert.match(text, /not run on a cluster/);
    for (const { file, doc } of docs) {
      for (const container of containersOf(doc)) {
        for (const [tool, ...words] of invocations([...(container.command ?? []), ...(container.args ?? [])].map(String))) {
          const task = words[words.indexOf('--task') + 1];
          if (tool === 'train' && words.includes('--task') && !task!.startsWith('inputs.parameters.'))
            assert.ok(text.includes(`train --task ${task}`), `${file}: docs/scale-out.md does not show train --task ${task}`);
        }
      }
    }
  });

  it('the Dockerfile is multi-stage, installs production dependencies only, and runs as a non-root user', async () => {
    const text = await readFile(join(K8S, 'Dockerfile'), 'utf8');
    assert.equal(text.match(/^FROM /gm)?.length, 2);
    assert.match(text, /pnpm .*deploy --prod/);
    assert.match(text, /^COPY --from=build /m);
    const user = /^USER (\S+)$/m.exec(text)?.[1];
    assert.ok(user && user !== 'root' && user !== '0', `USER ${user}`);
  });

  it('the Jobs and the Workflow agree with the plan: shard and trial counts, the completion index, one RWX volume', () => {
    const jobs = new Map(docs.filter((d) => d.doc.kind === 'Job').map((d) => [d.doc.metadata.name!, d.doc]));
    const planArgs = jobs.get('imgpipe-plan')!.spec.template.spec.containers[0].args as string[];
    const value = (flag: string) => planArgs[planArgs.indexOf(flag) + 1]!;
    const trials = ['--lr', '--layer-size', '--dropout', '--batch-size', '--epochs'].reduce(
      (n, f) => n * (planArgs.includes(f) ? value(f).split(',').length : 1),
      1,
    );
    assert.equal(jobs.get('imgpipe-extract')!.spec.completions, Number(value('--shards')));
    assert.equal(jobs.get('imgpipe-trials')!.spec.completions, trials);
    for (const name of ['imgpipe-extract', 'imgpipe-trials']) {
      const job = jobs.get(name)!;
      assert.equal(job.spec.completionMode, 'Indexed');
      assert.match(
        job.spec.template.spec.containers[0].args.join(' '),
        new RegExp(`--run ${value('--out')}/${value('--run-id')} --index "\\$JOB_COMPLETION_INDEX"`),
      );
    }
    const pvc = docs.find((d) => d.doc.kind === 'PersistentVolumeClaim')!.doc;
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany']);
    for (const { file, doc } of docs) {
      const volumes = doc.kind === 'Workflow' ? doc.spec.volumes : (doc.spec.template?.spec?.volumes ?? []);
      for (const v of volumes.filter((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim))
        assert.equal(v.persistentVolumeClaim.claimName, pvc.metadata.name, file);
    }
    const workflow = docs.find((d) => d.doc.kind === 'Workflow')!.doc;
    const tasks = workflow.spec.templates.find((t: { name: string }) => t.name === workflow.spec.entrypoint).dag.tasks as {
      name: string;
      dependencies?: string[];
    }[];
    const order = ['download', 'prep', 'plan', 'extract', 'trials', 'finish', 'eval', 'upload'];
    assert.deepEqual(
      tasks.map((t) => t.name),
      order,
    );
    for (const [i, task] of tasks.entries()) assert.deepEqual(task.dependencies ?? [], i === 0 ? [] : [order[i - 1]]);
  });

  it('serve: readiness on /v2/health/ready, resources, and a grace period longer than preStop plus --shutdown-timeout', () => {
    const deployment = docs.find((d) => d.doc.kind === 'Deployment')!.doc;
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/v2/health/ready');
    assert.equal(container.livenessProbe.httpGet.path, '/v2/health/live');
    assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
    const shutdown = Number(container.args[container.args.indexOf('--shutdown-timeout') + 1]);
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    assert.ok(
      shutdown > 0 && preStop + shutdown < pod.terminationGracePeriodSeconds,
      `${preStop} + ${shutdown} >= ${pod.terminationGracePeriodSeconds}`,
    );
    const service = docs.find((d) => d.doc.kind === 'Service')!.doc;
    assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
    const inference = docs.find((d) => d.doc.kind === 'InferenceService')!.doc;
    assert.equal(inference.spec.predictor.containers[0].readinessProbe.httpGet.path, '/v2/health/ready');
  });
});
