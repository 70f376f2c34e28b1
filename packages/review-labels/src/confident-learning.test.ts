import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { confidentLearning } from './confident-learning.js';
import { assignFolds } from './out-of-sample.js';

describe('confident learning', () => {
  // Two classes; thresholds: class 0 mean p0 over rows labelled 0, class 1 mean p1 over rows labelled 1.
  const probs = Float32Array.from([
    0.9,
    0.1, // labelled 0, fits 0
    0.8,
    0.2, // labelled 0, fits 0
    0.1,
    0.9, // labelled 0, looks like 1: flagged
    0.45,
    0.55, // labelled 0, p0 under t0 and p1 under t1: counted nowhere
    0.2,
    0.8, // labelled 1
    0.1,
    0.9, // labelled 1
    0.95,
    0.05, // labelled 1, looks like 0: flagged, most suspicious
  ]);
  const labels = Int32Array.from([0, 0, 0, 0, 1, 1, 1]);

  it('thresholds are the mean probability of each class over the images labelled with it', () => {
    const cl = confidentLearning(probs, labels, 2);
    assert.ok(Math.abs(cl.thresholds[0]! - (0.9 + 0.8 + 0.1 + 0.45) / 4) < 1e-6);
    assert.ok(Math.abs(cl.thresholds[1]! - (0.8 + 0.9 + 0.05) / 3) < 1e-6);
  });

  it('flags an image when another class reaches its threshold and beats the given label, lowest given-label probability first', () => {
    const cl = confidentLearning(probs, labels, 2);
    assert.deepEqual(cl.flagged, [6, 2]);
    assert.equal(cl.confident[2], 1);
    assert.equal(cl.confident[6], 0);
    assert.equal(cl.confident[3], -1, 'no class reaches its threshold');
  });

  it('estimates the noise rate from the calibrated confident joint', () => {
    const cl = confidentLearning(probs, labels, 2);
    // Rows of the raw joint: labelled 0 -> [2, 1] (image 3 counts nowhere), labelled 1 -> [1, 2]; calibrated to 4 and 3 images.
    assert.ok(Math.abs(cl.joint[0]![1]! - 4 / 3) < 1e-9);
    assert.ok(Math.abs(cl.joint[1]![0]! - 1) < 1e-9);
    assert.ok(Math.abs(cl.noiseRate - (4 / 3 + 1) / 7) < 1e-9);
  });

  it('a clean set with confident predictions flags nothing', () => {
    const clean = Float32Array.from([0.9, 0.1, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6]);
    const cl = confidentLearning(clean, Int32Array.from([0, 0, 1, 1]), 2);
    assert.deepEqual(cl.flagged, []);
    assert.equal(cl.noiseRate, 0);
  });
});

describe('folds', () => {
  it('deal each class evenly over the folds, the same way for the same seed', () => {
    const labels = Int32Array.from({ length: 103 }, (_, i) => (i % 7 === 0 ? 1 : 0));
    const folds = assignFolds(labels, 2, 5, 9);
    assert.deepEqual(folds, assignFolds(labels, 2, 5, 9));
    assert.notDeepEqual(folds, assignFolds(labels, 2, 5, 10));
    for (let c = 0; c < 2; c++) {
      const sizes = [0, 0, 0, 0, 0];
      labels.forEach((label, i) => {
        if (label === c) sizes[folds[i]!]! += 1;
      });
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `class ${c}: ${sizes}`);
    }
  });
});
