import * as tf from './tfjs-parts.js';

/**
 * Building a model here writes weights through tf's default backend (cpu in Node without tfjs-node), whose first
 * write prints a "Hi, looks like you are running TensorFlow.js in Node.js" banner meant for apps: not for tests.
 */
export function quietCpuBackend(): void {
  const backend = tf.getBackend() as string | undefined; // undefined until the first op picks one (cpu here)
  if (backend === undefined || backend === 'cpu') tf.env().set('IS_TEST', true);
}
