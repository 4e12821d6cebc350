// The one order in which export paths are compared: UTF-8 byte order, which is what SQLite's BINARY collation
// (memcmp) gives over a UTF-8 database. Reconciliation merges a directory walk against the recorded state
// read back in that order, so the walk must produce exactly this order too. Two things make that subtle:
// - JavaScript's `<` compares UTF-16 code units, which sorts U+E000..U+FFFF after astral characters; UTF-8
//   (code point order) sorts them before;
// - '/' (0x2F) sorts after '-' and '.' and before digits and letters, so 'a-b' < 'a.b' < 'a/b' < 'a0' < 'ab':
//   a directory's contents are not next to the directory in this order, its siblings may come between.

/** Negative, zero or positive as `a` sorts before, with or after `b` in UTF-8 byte order. */
export function compareBytes(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Code units and code points disagree only where a surrogate (D800-DFFF, half of a code point above
    // FFFF) meets a unit in E000-FFFF; moving the surrogates above that block restores code point order.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Whether `p` names something strictly inside directory `dir` ('' is the export root). */
export function isUnder(p: string, dir: string): boolean {
  return dir === '' ? p !== '' : p.length > dir.length + 1 && p.startsWith(dir) && p.charCodeAt(dir.length) === 0x2f;
}

/**
 * The paths strictly inside directory `dir` (not '') as a half-open range in byte order: `lo <= p < hi`.
 * Every string that starts with 'dir/' lies in ['dir/', 'dir0'), since '0' is the byte after '/'; nothing
 * else does ('dir-x' and 'dir.x' sort below, 'dirx' and 'dir0' above). A range, unlike LIKE 'dir/%', needs no
 * escaping of '%' and '_' in names and is answered from the primary key.
 */
export function subtreeRange(dir: string): { lo: string; hi: string } {
  return { lo: `${dir}/`, hi: `${dir}0` };
}
