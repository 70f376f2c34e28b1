import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, type TempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);

/**
 * A single-node Slurm cluster on loopback, for tests: munged, slurmctld and slurmd from Debian's slurm-wlm and munge,
 * in the foreground as children of this process, with a generated slurm.conf, ports, key, state and logs of their own
 * in a temp dir. Needs root (slurmd launches jobs as their user). Stop it with stop(), on failure too.
 */
export interface SlurmCluster {
  dir: string;
  /** SLURM_CONF (and PATH) for sbatch, squeue, scancel, scontrol and the scripts that call them. */
  env: Record<string, string>;
  /** Run a Slurm command against this cluster; its stdout. */
  command(name: string, args: string[]): Promise<string>;
  /** Wait until no job is pending or running; throws after timeoutMs with the queue and the daemons' logs. */
  waitIdle(timeoutMs: number): Promise<void>;
  /** JobState of each task of a job (one for a plain job, one per element of an array), e.g. COMPLETED, CANCELLED. */
  jobStates(id: string): Promise<string[]>;
  /** The daemons' logs, for a failure message. */
  logs(): Promise<string>;
  /** Stops slurmd, slurmctld and munged by pid and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function slurmConf(dir: string, host: string, ports: { ctld: number; slurmd: number }, cpus: number): string {
  return `${[
    'ClusterName=imgpipetest',
    `SlurmctldHost=${host}(127.0.0.1)`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    `AuthInfo=socket=${join(dir, 'munge', 'socket')}`,
    'CredType=cred/munge',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'SchedulerType=sched/backfill',
    'SchedulerParameters=sched_interval=1',
    `SlurmctldPort=${ports.ctld}`,
    `SlurmdPort=${ports.slurmd}`,
    `StateSaveLocation=${join(dir, 'state')}`,
    `SlurmdSpoolDir=${join(dir, 'spool')}`,
    `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
    `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
    `SlurmctldLogFile=${join(dir, 'slurmctld.log')}`,
    `SlurmdLogFile=${join(dir, 'slurmd.log')}`,
    'ReturnToService=2',
    'MpiDefault=none',
    'MinJobAge=600',
    'JobCompType=jobcomp/none',
    'AccountingStorageType=accounting_storage/none',
    'JobAcctGatherType=jobacct_gather/none',
    `NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN`,
    'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
  ].join('\n')}\n`;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function startSlurmCluster(options: { cpus?: number } = {}): Promise<SlurmCluster> {
  if (process.getuid?.() !== 0) throw new Error('startSlurmCluster needs root (slurmd runs jobs as their user)');
  for (const bin of ['munged', 'slurmctld', 'slurmd', 'sbatch']) {
    await run('sh', ['-c', `command -v ${bin}`]).catch(() => {
      throw new Error(`${bin} not found: install Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge; .ci/run does)`);
    });
  }
  const temp: TempDir = await makeTempDir('imgpipe-slurm-');
  const dir = temp.path;
  const children: ChildProcess[] = [];
  const env = { ...process.env, SLURM_CONF: join(dir, 'slurm.conf') } as Record<string, string>;
  let stopped = false;
  const logs = async () => {
    const parts = [];
    for (const name of ['munged.out', 'slurmctld.log', 'slurmd.log', 'slurmctld.out', 'slurmd.out']) {
      parts.push(`--- ${name}\n${(await readFile(join(dir, name), 'utf8').catch(() => '')).split('\n').slice(-25).join('\n')}`);
    }
    return parts.join('\n');
  };
  const command = async (name: string, args: string[]) => (await run(name, args, { env })).stdout;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Jobs still queued or running (a test that failed half-way) are cancelled first, so no job outlives the cluster.
    const jobs = (await command('squeue', ['-h', '-o', '%A']).catch(() => '')).split('\n').filter(Boolean);
    if (jobs.length > 0) {
      await command('scancel', jobs).catch(() => '');
      await waitFor(async () => (await command('squeue', ['-h', '-o', '%A']).catch(() => '')).trim() === '', 'the jobs to end', {
        timeoutMs: 20_000,
        intervalMs: 250,
      }).catch(() => undefined);
    }
    // slurmd first (it ends the jobs' step daemons), then the controller, then munge.
    for (const child of [...children].reverse()) await stopChild(child);
    await temp.remove();
  };
  const start = async (name: string, bin: string, args: string[]) => {
    const out = join(dir, `${name}.out`);
    const file = await open(out, 'w');
    const child = spawn(bin, args, { env, stdio: ['ignore', file.fd, file.fd] });
    children.push(child);
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    await file.close();
    await spawned;
  };
  try {
    // munged checks that its socket's directory is reachable by all, and its key private.
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'munge'), { mode: 0o755 });
    await mkdir(join(dir, 'state'));
    await mkdir(join(dir, 'spool'));
    await writeFile(join(dir, 'munge', 'key'), randomBytes(1024), { mode: 0o400 });
    await start('munged', 'munged', [
      '--foreground',
      '--force',
      `--key-file=${join(dir, 'munge', 'key')}`,
      `--socket=${join(dir, 'munge', 'socket')}`,
      `--pid-file=${join(dir, 'munge', 'pid')}`,
      `--log-file=${join(dir, 'munge', 'log')}`,
      `--seed-file=${join(dir, 'munge', 'seed')}`,
    ]);
    const ports = { ctld: await freePort(), slurmd: await freePort() };
    await writeFile(env.SLURM_CONF!, slurmConf(dir, hostname(), ports, options.cpus ?? 2));
    await waitFor(async () => (await readFile(join(dir, 'munge', 'pid'), 'utf8').catch(() => '')) !== '', 'munged to start', {
      timeoutMs: 10_000,
      intervalMs: 250,
    });
    await start('slurmctld', 'slurmctld', ['-D', '-f', env.SLURM_CONF!]);
    await start('slurmd', 'slurmd', ['-D', '-f', env.SLURM_CONF!]);
    await waitFor(async () => /idle/.test(await command('sinfo', ['-h', '-o', '%T']).catch(() => '')), 'the node to be idle', {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
  } catch (error) {
    const text = await logs();
    await stop();
    throw new Error(`the Slurm cluster did not start: ${(error as Error).message}\n${text}`, { cause: error });
  }
  return {
    dir,
    env,
    command,
    logs,
    stop,
    async waitIdle(timeoutMs) {
      await waitFor(async () => (await command('squeue', ['-h', '-o', '%i'])).trim() === '', 'the queue to empty', {
        timeoutMs,
        intervalMs: 250,
      }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await command('squeue', []).catch(() => '')}\n${await logs()}`);
      });
    },
    async jobStates(id) {
      const text = await command('scontrol', ['show', 'job', '-o', id]);
      return [...text.matchAll(/JobState=(\S+)/g)].map((m) => m[1]!);
    },
  };
}
