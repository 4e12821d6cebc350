// The transport-independent half of serving a request: the opcode table, the header checks, copying and
// validating strings, and the call into the FileBackend. Transports (ring-server, stream-server) only find the
// payload and output bytes and deliver the response.
#pragma once

#include <string_view>

#include "file-backend.hpp"
#include "protocol.hpp"

namespace xenfs {

enum class NameKind : uint8_t { kNone, kName, kPath, kTarget };
enum class DataDir : uint8_t { kNone, kIn, kOut };

// Where a request is served. The session thread is the guest's own, so an op run there delays only that guest;
// the worker pool is for overlapping a guest's concurrent requests, and each hop to it costs a thread wake-up —
// on a virtual CPU often more than the syscall it carries.
enum class RunOn : uint8_t {
  kSession,      // never waits on the disk (lookups, attributes)
  kSessionIdle,  // usually done in microseconds (metadata changes; file data in dom0's page cache): on the session
                 // thread when it is the guest's only request, else on the pool
  kPool,         // waits for the disk by nature (fsync, fallocate): always the pool
};

struct OpSpec {
  const char* name;
  int (FileBackend::*fn)(const Call&, proto::Response&);  // nullptr: served by the session itself (locks)
  NameKind name1;
  NameKind name2;
  DataDir data;
  RunOn run_on;
  uint32_t feature;      // 0, or the feature bit that must have been negotiated
  uint32_t exact_data;   // 0, or the exact number of data bytes the op carries (setattr)
};

// nullptr for an opcode the protocol does not define.
const OpSpec* op_spec(uint8_t op);

// The most payload any request may carry: two paths and a full data buffer.
constexpr size_t kMaxPayload = 2 * proto::kMaxPath + proto::kMaxData;

// Checks the header fields that do not depend on the transport. 0 or -errno.
int check_header(const proto::Request& req, const OpSpec* spec, uint32_t features);

// Validation of guest-supplied strings (already copied into dom0 memory). 0 or -errno.
int check_name(std::string_view s);    // one component: 1..255 bytes, no NUL, no '/', not "." or ".."
int check_path(std::string_view s);    // relative path: 1..4096 bytes, no NUL, no leading '/', components <= 255
int check_target(std::string_view s);  // symlink text: 1..4095 bytes, no NUL

// What a session does around a backend call, while the request's strings are dom0's own checked copies
// (invalidation.hpp). Called only for requests whose strings passed; must not throw.
class CallHooks {
 public:
  virtual void before(const Call& c) = 0;
  virtual void after(const Call& c, proto::Response& rsp) = 0;

 protected:
  ~CallHooks() = default;
};

// Runs a request whose header passed check_header. `payload` holds name1, name2 and the data, in that order;
// `out` is the space for output data. Fills rsp.status and whatever the op replies.
void execute(FileBackend& backend, const proto::Request& req, const OpSpec& spec, IoSpan payload, IoSpan out,
             proto::Response& rsp, CallHooks* hooks = nullptr);

// Copies up to `n` bytes from an IoSpan starting at `skip`; returns the bytes copied.
size_t copy_from_span(const IoSpan& span, size_t skip, void* dst, size_t n);

}  // namespace xenfs
