// The command line every benchmark shares: `--json`, `--name N` numbers and `--name a,b,c` lists.
export interface BenchArgs {
  /** `--json` was given: the last line printed is the result object. */
  json: boolean;
  /** `--name N`, a positive number, else `dflt`; anything else throws naming the flag. */
  num(name: string, dflt: number): number;
  /** `--name a,b,c`, else `dflt`. */
  list(name: string, dflt: string[]): string[];
}

export function benchArgs(args: string[] = process.argv.slice(2)): BenchArgs {
  const valueOf = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? (args[i + 1] ?? '') : undefined;
  };
  return {
    json: args.includes('--json'),
    num(name, dflt) {
      const text = valueOf(name);
      const v = text === undefined ? dflt : Number(text);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
      return v;
    },
    list(name, dflt) {
      const text = valueOf(name);
      return text === undefined ? dflt : text.split(',');
    },
  };
}
