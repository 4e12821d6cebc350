// Reading variable-size answers (GETXATTR values, LISTXATTR name lists) without knowing their size first.
import { ErrnoError, errno } from '../errors.ts';
import type { RequestSpec } from '../protocol/encode.ts';
import { MAX_XATTR_VALUE } from '../protocol/layout.ts';
import { type CallContext, type Rpc, isErrno } from './rpc.ts';

/** First guess at a value's size: most values and name lists fit, so most reads take one request. */
const FIRST_GUESS = 4096;
const ERANGE = errno('ERANGE');

/**
 * Try a 4 KiB buffer; on ERANGE ask the size (len 0) and retry with exactly that. The value may change between
 * the two requests, so a few rounds are allowed before the ERANGE is passed on.
 */
export async function readSized(rpc: Rpc, spec: RequestSpec, ctx: CallContext): Promise<Buffer> {
  let len = FIRST_GUESS;
  for (let round = 0; ; round++) {
    try {
      const reply = await rpc.call({ ...spec, len }, ctx);
      return reply.data ?? Buffer.alloc(0);
    } catch (err) {
      if (!isErrno(err, ERANGE) || round >= 3) throw err;
    }
    const probe = await rpc.call({ ...spec, len: 0 }, ctx);
    if (probe.header.len === 0) return Buffer.alloc(0);
    if (probe.header.len > MAX_XATTR_VALUE) {
      throw new ErrnoError(errno('E2BIG'), '', ctx.path, { syscall: ctx.syscall });
    }
    len = probe.header.len;
  }
}
