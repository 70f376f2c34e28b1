/**
 * Buffers kept for reuse, up to `maxBytes` in all. A fresh buffer per picture is external memory that keeps V8
 * collecting garbage (measured on a decode thread: a third of the decode's CPU) and fresh pages to fault in.
 */
export class SpareBuffers {
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /**
   * A buffer of at least `bytes` bytes: the kept one given back last that fits (the likeliest to be in the CPU's
   * caches still), else a new one. `release` gives it back, once; the buffer must not be used after.
   */
  take(bytes: number): { buffer: Buffer; release(): void } {
    const index = this.kept.findLastIndex((buffer) => buffer.length >= bytes);
    const buffer = index >= 0 ? this.kept.splice(index, 1)[0]! : Buffer.allocUnsafe(bytes);
    if (index >= 0) this.keptBytes -= buffer.length;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (this.keptBytes + buffer.length > this.maxBytes) return;
      this.kept.push(buffer);
      this.keptBytes += buffer.length;
    };
    return { buffer, release };
  }
}
