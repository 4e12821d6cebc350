#include "request-engine.hpp"

#include <errno.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace xenfs {

namespace {

using proto::Op;
using B = FileBackend;
constexpr auto N = NameKind::kNone, NM = NameKind::kName, P = NameKind::kPath, T = NameKind::kTarget;
constexpr auto D0 = DataDir::kNone, IN = DataDir::kIn, OUT = DataDir::kOut;
constexpr auto S = RunOn::kSession, SI = RunOn::kSessionIdle, PL = RunOn::kPool;

constexpr std::array<OpSpec, proto::kOpCount> make_table() {
  std::array<OpSpec, proto::kOpCount> t{};
  t[Op::kLookup] = {"lookup", &B::lookup, NM, N, D0, S, 0, 0};
  t[Op::kForget] = {"forget", &B::forget, N, N, D0, S, 0, 0};
  t[Op::kGetattr] = {"getattr", &B::getattr, N, N, D0, S, 0, 0};
  t[Op::kSetattr] = {"setattr", &B::setattr, N, N, IN, SI, 0, proto::kSetattrPayload};
  t[Op::kReadlink] = {"readlink", &B::readlink, N, N, OUT, S, 0, 0};
  t[Op::kOpen] = {"open", &B::open, N, N, D0, SI, 0, 0};
  t[Op::kCreate] = {"create", &B::create, NM, N, D0, SI, 0, 0};
  t[Op::kRead] = {"read", &B::read, N, N, OUT, SI, 0, 0};
  t[Op::kWrite] = {"write", &B::write, N, N, IN, SI, 0, 0};
  t[Op::kFlush] = {"flush", &B::flush, N, N, D0, S, 0, 0};
  t[Op::kFsync] = {"fsync", &B::fsync, N, N, D0, PL, 0, 0};
  t[Op::kRelease] = {"release", &B::release, N, N, D0, SI, 0, 0};
  t[Op::kOpendir] = {"opendir", &B::opendir, N, N, D0, S, 0, 0};
  t[Op::kReaddir] = {"readdir", &B::readdir, N, N, OUT, SI, 0, 0};
  t[Op::kMkdir] = {"mkdir", &B::mkdir, NM, N, D0, SI, 0, 0};
  t[Op::kUnlink] = {"unlink", &B::unlink, NM, N, D0, SI, 0, 0};
  t[Op::kRmdir] = {"rmdir", &B::rmdir, NM, N, D0, SI, 0, 0};
  t[Op::kRename] = {"rename", &B::rename, NM, NM, D0, SI, 0, 0};
  t[Op::kSymlink] = {"symlink", &B::symlink, NM, T, D0, SI, 0, 0};
  t[Op::kLink] = {"link", &B::link, NM, N, D0, SI, 0, 0};
  t[Op::kStatfs] = {"statfs", &B::statfs, N, N, D0, S, 0, 0};
  t[Op::kGetxattr] = {"getxattr", &B::getxattr, NM, N, OUT, S, proto::kFeatXattr, 0};
  t[Op::kSetxattr] = {"setxattr", &B::setxattr, NM, N, IN, SI, proto::kFeatXattr, 0};
  t[Op::kListxattr] = {"listxattr", &B::listxattr, N, N, OUT, S, proto::kFeatXattr, 0};
  t[Op::kRemovexattr] = {"removexattr", &B::removexattr, NM, N, D0, SI, proto::kFeatXattr, 0};
  t[Op::kFallocate] = {"fallocate", &B::fallocate, N, N, D0, PL, proto::kFeatFallocate, 0};
  t[Op::kAccess] = {"access", &B::access, N, N, D0, S, 0, 0};
  t[Op::kMknod] = {"mknod", &B::mknod, NM, N, D0, SI, proto::kFeatMknod, 0};
  t[Op::kWalk] = {"walk", &B::walk, P, N, D0, S, 0, 0};
  // No backend method: locks belong to the whole server, and the session serves these against its lock table.
  t[Op::kGetlk] = {"getlk", nullptr, N, N, IN, S, 0, proto::kLockPayload};
  t[Op::kSetlk] = {"setlk", nullptr, N, N, IN, S, 0, proto::kLockPayload};
  t[Op::kInterrupt] = {"interrupt", nullptr, N, N, D0, S, 0, 0};
  return t;
}

constexpr std::array<OpSpec, proto::kOpCount> kTable = make_table();

size_t max_len(NameKind k) {
  switch (k) {
    case NameKind::kNone: return 0;
    case NameKind::kName: return proto::kMaxName;
    case NameKind::kPath: return proto::kMaxPath;
    case NameKind::kTarget: return proto::kMaxPath - 1;
  }
  return 0;
}

int check_string(NameKind k, std::string_view s) {
  switch (k) {
    case NameKind::kNone: return s.empty() ? 0 : -EINVAL;
    case NameKind::kName: return check_name(s);
    case NameKind::kPath: return check_path(s);
    case NameKind::kTarget: return check_target(s);
  }
  return -EINVAL;
}

// A span of the same memory starting `skip` bytes in, `len` bytes long.
IoSpan subspan(const IoSpan& span, size_t skip, size_t len, std::vector<iovec>& storage) {
  storage.clear();
  size_t left = len;
  for (int i = 0; i < span.iovcnt && left; i++) {
    size_t l = span.iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t take = std::min(l - skip, left);
    storage.push_back({static_cast<uint8_t*>(span.iov[i].iov_base) + skip, take});
    left -= take;
    skip = 0;
  }
  return IoSpan{storage.data(), static_cast<int>(storage.size()), len - left};
}

}  // namespace

const OpSpec* op_spec(uint8_t op) {
  if (op >= proto::kOpCount || kTable[op].name == nullptr) return nullptr;
  return &kTable[op];
}

int check_name(std::string_view s) {
  if (s.empty()) return -EINVAL;
  if (s.size() > proto::kMaxName) return -ENAMETOOLONG;
  if (s == "." || s == "..") return -EINVAL;
  for (char c : s)
    if (c == '\0' || c == '/') return -EINVAL;
  return 0;
}

int check_path(std::string_view s) {
  if (s.empty() || s.front() == '/') return -EINVAL;
  if (s.size() > proto::kMaxPath) return -ENAMETOOLONG;
  size_t component = 0;
  for (char c : s) {
    if (c == '\0') return -EINVAL;
    component = c == '/' ? 0 : component + 1;
    if (component > proto::kMaxName) return -ENAMETOOLONG;
  }
  return 0;
}

int check_target(std::string_view s) {
  if (s.empty()) return -ENOENT;  // what symlink(2) answers for an empty target
  if (s.size() >= proto::kMaxPath) return -ENAMETOOLONG;
  return s.find('\0') == std::string_view::npos ? 0 : -EINVAL;
}

int check_header(const proto::Request& req, const OpSpec* spec, uint32_t features) {
  if (!spec) return -ENOSYS;
  if (spec->feature && !(features & spec->feature)) return -ENOSYS;
  if (req.nsegs > proto::kMaxSegs) return -EINVAL;
  size_t names = size_t{req.name1_len} + req.name2_len;
  if (req.name1_len > max_len(spec->name1) || req.name2_len > max_len(spec->name2))
    return spec->name1 == NameKind::kNone ? -EINVAL : -ENAMETOOLONG;
  if (req.payload_len < names || req.payload_len > kMaxPayload) return -EINVAL;
  bool ext = req.flags & proto::kFlagPayloadExt;
  if (!ext && req.payload_len > proto::kInlineCapacity) return -EINVAL;
  size_t data = req.payload_len - names;
  if (spec->data != DataDir::kIn && data != 0) return -EINVAL;
  if (spec->exact_data && data != spec->exact_data) return -EINVAL;
  if (spec->data == DataDir::kIn && data > proto::kMaxData) return -EINVAL;
  if (spec->data == DataDir::kOut) {
    // An op that returns data uses the segments for its output, so its input must fit inline.
    if (ext || req.len > proto::kMaxData) return -EINVAL;
  }
  return 0;
}

size_t copy_from_span(const IoSpan& span, size_t skip, void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  for (int i = 0; i < span.iovcnt && done < n; i++) {
    size_t l = span.iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t take = std::min(l - skip, n - done);
    std::memcpy(out + done, static_cast<const uint8_t*>(span.iov[i].iov_base) + skip, take);
    done += take;
    skip = 0;
  }
  return done;
}

void execute(FileBackend& backend, const proto::Request& req, const OpSpec& spec, IoSpan payload, IoSpan out,
             proto::Response& rsp, CallHooks* hooks) {
  if (!spec.fn) {
    rsp.status = -ENOSYS;
    return;
  }
  size_t names = size_t{req.name1_len} + req.name2_len;
  if (payload.len < req.payload_len) {
    rsp.status = -EFAULT;
    return;
  }
  // Strings are copied out of guest-writable memory once; everything after this looks only at the copy.
  char strings[2 * proto::kMaxPath];
  if (copy_from_span(payload, 0, strings, names) != names) {
    rsp.status = -EFAULT;
    return;
  }
  std::string_view name1(strings, req.name1_len);
  std::string_view name2(strings + req.name1_len, req.name2_len);
  int rc = check_string(spec.name1, name1);
  if (rc == 0) rc = check_string(spec.name2, name2);
  if (rc < 0) {
    rsp.status = rc;
    return;
  }
  std::vector<iovec> data_iov, out_iov;
  Call call{req, name1, name2, {}, {}};
  if (spec.data == DataDir::kIn) call.in = subspan(payload, names, req.payload_len - names, data_iov);
  if (spec.data == DataDir::kOut) call.out = subspan(out, 0, std::min<size_t>(req.len, out.len), out_iov);
  if (hooks) hooks->before(call);
  rsp.status = (backend.*spec.fn)(call, rsp);
  if (hooks) hooks->after(call, rsp);
}

}  // namespace xenfs
