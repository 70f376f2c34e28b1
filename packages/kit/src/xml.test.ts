import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeXml } from './xml.js';

test('escapeXml replaces the five XML specials and nothing else', () => {
  assert.equal(escapeXml(`<a href="x" title='y'>Tom & Jerry</a>`), '&lt;a href=&quot;x&quot; title=&apos;y&apos;&gt;Tom &amp; Jerry&lt;/a&gt;');
  assert.equal(escapeXml('&amp;'), '&amp;amp;', 'escaped text is escaped again, not passed through');
  assert.equal(escapeXml('chat ü 猫 / \\ 100%'), 'chat ü 猫 / \\ 100%');
});
