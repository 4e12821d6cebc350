// ExportBackend, directory listing: OPENDIR and READDIR. See export-backend.hpp for the contract.
#include "export-backend.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <mutex>

#include "export-backend-internal.hpp"
#include "span-cursor.hpp"

namespace xenfs {

using namespace export_detail;

namespace {

constexpr size_t kDirentBatch = 16384;  // most getdents64 bytes one READDIR reads at a time

int finish_readdir(const SpanWriter& out, bool eof, proto::Response& r) {
  r.len = static_cast<uint32_t>(out.written());
  if (eof) r.flags |= proto::kReaddirEof;
  return 0;
}

// What READDIR does with '.' and '..': left out, unless the guest asked for them (READDIR_DOTS); at an export's
// root '..' then names the root itself, as at a filesystem's root, so no host inode beyond the export shows.
struct Dots {
  bool include = false;
  uint64_t dotdot_ino = 0;  // when not 0, '..''s inode number
};

// Appends the records of one getdents64 batch; false when the next one does not fit.
bool emit_dirents(const char* buf, size_t n, SpanWriter& out, const Dots& dots) {
  constexpr size_t kNameOff = offsetof(struct dirent64, d_name);
  for (size_t pos = 0; pos + kNameOff <= n;) {
    struct dirent64 d;
    memcpy(&d, buf + pos, kNameOff);
    if (d.d_reclen <= kNameOff || pos + d.d_reclen > n) break;  // never trust a length into a loop
    const char* name = buf + pos + kNameOff;
    const size_t len = strnlen(name, d.d_reclen - kNameOff);
    pos += d.d_reclen;
    const bool dotdot = len == 2 && name[0] == '.' && name[1] == '.';
    if ((dotdot || (len == 1 && name[0] == '.')) && !dots.include) continue;
    const size_t padded = (len + 7) & ~size_t{7};
    if (sizeof(proto::DirentHeader) + padded > out.room()) return false;
    proto::DirentHeader hdr{};
    hdr.ino = dotdot && dots.dotdot_ino ? dots.dotdot_ino : d.d_ino;
    hdr.next = static_cast<uint64_t>(d.d_off);
    hdr.namelen = static_cast<uint16_t>(len);
    hdr.type = d.d_type;
    out.put(&hdr, sizeof hdr);
    out.put(name, len);
    out.zeros(padded - len);
  }
  return true;
}

}  // namespace

int ExportBackend::opendir(const Call& c, proto::Response& r) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  struct stat st;
  if (int e = stat_fd(n.fdn(), st)) return e;
  if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
  if (handles_full()) return -EMFILE;
  const int fd = reopen(n.fdn(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fd;
  return add_handle(n.exp, fd, true, r);
}

// Records for one READDIR: seek to the guest's cookie, then getdents64 until the output is full or the
// directory ends. Each record's `next` is the kernel's d_off, so the guest pages by cookie and a directory
// of any size is served in bounded memory.
int ExportBackend::readdir(const Call& c, proto::Response& r) {
  HandleRef h;
  if (int e = handle(c.req.fh, h)) return e;
  if (!h->dir) return -ENOTDIR;
  if (c.req.offset > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
  if (c.req.arg32a & ~proto::kReaddirDots) return -EINVAL;
  Dots dots;
  if (c.req.arg32a & proto::kReaddirDots) {
    dots.include = true;
    NodeRef root;
    struct stat self, top;
    if (node(uint64_t{h->exp} + 1, root) == 0 && stat_fd(h->fd, self) == 0 && stat_fd(root.fdn(), top) == 0 &&
        self.st_dev == top.st_dev && self.st_ino == top.st_ino)
      dots.dotdot_ino = self.st_ino;
  }
  std::lock_guard lock(h->dir_mu);
  if (lseek(h->fd, static_cast<off_t>(c.req.offset), SEEK_SET) < 0) return neg_errno();
  SpanWriter out(c.out, c.req.len);
  // Read about as many entries as the guest can take (our records are never smaller than the kernel's):
  // a full 16 KiB batch for a small buffer would be thrown away and re-read on the next call.
  alignas(8) char buf[kDirentBatch];
  const size_t batch = std::clamp<size_t>(out.room() + 512, 1024, sizeof buf);
  for (;;) {
    const long n = syscall(SYS_getdents64, h->fd, buf, batch);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return out.written() ? finish_readdir(out, false, r) : neg_errno();
    if (n == 0) return finish_readdir(out, true, r);
    if (!emit_dirents(buf, static_cast<size_t>(n), out, dots))
      return out.written() ? finish_readdir(out, false, r) : -EINVAL;  // not even one record fits
  }
}

}  // namespace xenfs
