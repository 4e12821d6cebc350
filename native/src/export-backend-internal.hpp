// Helpers the export backend's translation units share (export-backend.cpp and its export-*.cpp siblings);
// not part of any contract outside them.
//
// Kernel facts the export backend leans on (Linux 6.18):
// - openat2's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS confines every lookup; with
//   O_PATH | O_NOFOLLOW a trailing symlink yields a descriptor on the link itself.
// - O_PATH descriptors work with fstatat, fchownat, utimensat, faccessat2 (AT_EMPTY_PATH), fchmodat2 (6.6+),
//   fstatfs, readlinkat(fd, "") and linkat(AT_EMPTY_PATH); fchmod, futimens, f*xattr and even the new
//   *xattrat syscalls refuse them with EBADF, so data and xattr access reopen through /proc/self/fd.
// - Reopening /proc/self/fd/N with O_NOFOLLOW always fails ELOOP (the magic link is the trailing
//   component), so reopens go without it and check the node's type first instead.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "file-backend.hpp"
#include "span-cursor.hpp"

namespace xenfs::export_detail {

inline constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
inline constexpr int kStatFlags = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW;
// Set-id bits on files are never created for a guest: a guest that owns a file may chown it to root, and a
// setuid-root binary on dom0's disk is an escalation path for any dom0 user who can reach the export.
// (The setgid bit on directories only steers group inheritance and stays.)
inline constexpr mode_t kSetIdBits = S_ISUID | S_ISGID;
inline constexpr int kOpenat2Retries = 8;  // EAGAIN: a concurrent rename raced a ".." check

inline int neg_errno() { return errno > 0 ? -errno : -EIO; }

struct CStr {
  char s[proto::kMaxPath + 1];
};

// A path for openat2, which confines it: 1..4096 bytes, no NUL.
inline int copy_path(std::string_view in, CStr& out) {
  if (in.empty() || in.find('\0') != std::string_view::npos) return -EINVAL;
  if (in.size() > proto::kMaxPath) return -ENAMETOOLONG;
  memcpy(out.s, in.data(), in.size());
  out.s[in.size()] = '\0';
  return 0;
}

// One path component. mkdirat, unlinkat, renameat2, symlinkat, linkat and mknodat take no RESOLVE_ flags, so
// it is this check (repeated here although the engine made it) that keeps them inside the parent directory.
inline int copy_name(std::string_view in, CStr& out) {
  if (in.size() > proto::kMaxName) return -ENAMETOOLONG;
  if (in == "." || in == ".." || in.find('/') != std::string_view::npos) return -EINVAL;
  return copy_path(in, out);
}

inline int openat2_beneath(int dirfd, const char* path, uint64_t flags, uint64_t mode) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = kResolve;
  for (int tries = 0;;) {
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && ++tries < kOpenat2Retries)) continue;
    return neg_errno();
  }
}

inline int stat_fd(int fd, struct stat& st) {
  return fstatat(fd, "", &st, kStatFlags) < 0 ? neg_errno() : 0;
}

// Closes a descriptor on scope exit.
struct Closer {
  int fd;
  ~Closer() {
    if (fd >= 0) ::close(fd);
  }
};

// Output whose size the guest cannot know in advance: len 0 asks for the size, too small is -ERANGE.
inline int reply_bytes(const Call& c, proto::Response& r, const void* data, size_t len) {
  r.len = static_cast<uint32_t>(len);
  if (c.req.len == 0) return 0;
  SpanWriter w(c.out, c.req.len);
  if (len > w.room()) {
    r.len = 0;
    return -ERANGE;
  }
  w.put(data, len);
  return 0;
}

}  // namespace xenfs::export_detail
