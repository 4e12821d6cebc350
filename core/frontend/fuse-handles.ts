// The numbers a FUSE mount hands libfuse as `fh` for its open files. libfuse echoes them on every later call on
// that file; fuse-native carries them as int32 and treats 0 as "no handle", so they are small integers from 1.

/** Numbered slots for open objects. Freed numbers are reused first, so numbers stay as small as the open set. */
export class HandleTable<T> {
  readonly #slots = new Map<number, T>();
  readonly #free: number[] = [];
  #next = 1;

  /** How many are open. */
  get size(): number {
    return this.#slots.size;
  }

  /** Store `value`; returns its number (>= 1). */
  add(value: T): number {
    const fd = this.#free.pop() ?? this.#next++;
    this.#slots.set(fd, value);
    return fd;
  }

  get(fd: number): T | undefined {
    return this.#slots.get(fd);
  }

  /** Forget `fd` and return what it held; its number may be handed out again at once. */
  remove(fd: number): T | undefined {
    const value = this.#slots.get(fd);
    if (value === undefined) return undefined;
    this.#slots.delete(fd);
    this.#free.push(fd);
    return value;
  }

  /** Empty the table, returning everything it held. */
  drain(): T[] {
    const values = [...this.#slots.values()];
    this.#slots.clear();
    this.#free.length = 0;
    this.#next = 1;
    return values;
  }
}
