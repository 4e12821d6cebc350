// Byte-level access to an IoSpan (guest pages, an inline payload or a stream buffer) for backends: copy a
// value out once, write records that straddle page boundaries, and hand a window of the span to
// preadv/pwritev. Header-only so any backend can use it without touching the build.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "file-backend.hpp"

namespace xenfs {

// Bytes a span really covers: the smaller of its stated length and the sum of its iovecs, so a span whose
// fields disagree can never be read or written past its buffers.
inline size_t span_size(const IoSpan& s) {
  size_t sum = 0;
  for (int i = 0; i < s.iovcnt; ++i) sum += s.iov[i].iov_len;
  return std::min(sum, s.len);
}

// Copies up to n bytes from the start of a span into dom0 memory; returns the bytes copied. Guest memory may
// change under us, so a value is copied once and only the copy is checked and used.
inline size_t span_read(const IoSpan& s, void* dst, size_t n) {
  n = std::min(n, span_size(s));
  size_t done = 0;
  for (int i = 0; i < s.iovcnt && done < n; ++i) {
    const size_t k = std::min(s.iov[i].iov_len, n - done);
    memcpy(static_cast<uint8_t*>(dst) + done, s.iov[i].iov_base, k);
    done += k;
  }
  return done;
}

// Appends bytes to an output span, across iovec boundaries, up to a limit (the guest's requested length).
class SpanWriter {
 public:
  SpanWriter(const IoSpan& s, size_t limit) : span_(s), cap_(std::min(limit, span_size(s))) {}

  size_t room() const { return cap_ - written_; }
  size_t written() const { return written_; }
  // Copies n bytes (n <= room(); more is cut off).
  void put(const void* src, size_t n) { copy(static_cast<const uint8_t*>(src), n); }
  // Writes n zero bytes, so padding never carries stale dom0 memory to the guest.
  void zeros(size_t n) { copy(nullptr, n); }

 private:
  void copy(const uint8_t* src, size_t n) {
    n = std::min(n, room());
    while (n > 0 && iov_ < span_.iovcnt) {
      const iovec& v = span_.iov[iov_];
      const size_t k = std::min(v.iov_len - off_, n);
      uint8_t* dst = static_cast<uint8_t*>(v.iov_base) + off_;
      if (src) {
        memcpy(dst, src, k);
        src += k;
      } else {
        memset(dst, 0, k);
      }
      n -= k;
      written_ += k;
      off_ += k;
      if (off_ == v.iov_len) {
        ++iov_;
        off_ = 0;
      }
    }
  }

  const IoSpan& span_;
  size_t cap_;
  size_t written_ = 0;
  int iov_ = 0;
  size_t off_ = 0;
};

// Up to kMax iovecs of a span, starting `skip` bytes in and covering at most `limit` bytes: what one
// preadv/pwritev call takes. Callers loop, advancing `skip`, until the span is done.
struct IovWindow {
  static constexpr int kMax = 64;
  iovec iov[kMax];
  int count = 0;

  IovWindow(const IoSpan& s, size_t skip, size_t limit) {
    limit = std::min(limit, span_size(s) - std::min(skip, span_size(s)));
    for (int i = 0; i < s.iovcnt && count < kMax && limit > 0; ++i) {
      const size_t len = s.iov[i].iov_len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      const size_t k = std::min(len - skip, limit);
      iov[count++] = iovec{static_cast<uint8_t*>(s.iov[i].iov_base) + skip, k};
      limit -= k;
      skip = 0;
    }
  }
};

}  // namespace xenfs
