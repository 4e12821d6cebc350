// Turning one guest's successful calls into change events (docs/events.md). Namespace changes become an event
// each, appended to the EventLog before the reply goes out. Data changes are coalesced as inotify's
// IN_CLOSE_WRITE is: a handle that may change its file is remembered with the attributes it saw at open, and one
// `modified` goes out at its FLUSH, FSYNC or RELEASE when the file changed meanwhile — through dom0 or, with
// FUSE passthrough, straight into the backing file, where dom0 sees no write at all.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "event-log.hpp"
#include "file-backend.hpp"
#include "request-engine.hpp"

namespace xenfs {

// What a session reports under: the guest's name and its exports' names (by export index).
struct EventSource {
  std::shared_ptr<EventLog> log;
  std::string guest;
  std::vector<std::string> exports;
};

class ChangeEvents {
 public:
  ChangeEvents(FileBackend& backend, EventSource source);
  ChangeEvents(const ChangeEvents&) = delete;
  ChangeEvents& operator=(const ChangeEvents&) = delete;

  // Appends that failed (the log's disk full): each one is a change only reconciliation can find again.
  uint64_t lost() const;

 private:
  friend class ChangeEventCall;
  // What a removal or rename found at a name before the call, while the name still existed.
  struct Victim {
    bool dir = false;
    uint64_t size = 0, ino = 0;
    double mtime_ms = 0;
  };
  // A handle that may change its file, with the file's attributes as last reported.
  struct Writer {
    uint64_t size = 0;
    timespec mtime{}, ctime{};
    bool dirty = false;  // changed through dom0 (write, fallocate, ftruncate) or truncated at open
  };

  void after(const Call& c, const proto::Response& rsp, const std::optional<Victim> (&victims)[2]);
  void opened(uint64_t fh, bool truncated);
  void written(uint64_t fh);
  void closed(uint64_t fh, bool release);
  void entry(EventKind kind, uint64_t dir, std::string_view name, const struct stat* st, const Victim* v);
  void renamed(const Call& c, const std::optional<Victim> (&victims)[2]);
  void node_event(EventKind kind, uint64_t node);
  bool dir_path(uint64_t dir, std::string_view name, uint32_t& exp, std::string& path);
  void emit(EventKind kind, uint32_t exp, const std::string& path, const std::string& old, bool dir, uint64_t size,
            double mtime_ms, uint64_t ino);

  FileBackend& backend_;
  EventSource source_;
  std::mutex mu_;
  std::unordered_map<uint64_t, Writer> writers_;  // by handle
};

// The event side of one request (execute's CallHooks): before a removal or rename, notes what the names held;
// after a success, appends the events it made.
class ChangeEventCall final : public CallHooks {
 public:
  explicit ChangeEventCall(ChangeEvents& ev) : ev_(ev) {}
  void before(const Call& c) override;
  void after(const Call& c, proto::Response& rsp) override;

 private:
  ChangeEvents& ev_;
  std::optional<ChangeEvents::Victim> victims_[2];
};

// Runs two sets of hooks around one call, in order (after() in reverse).
class HookPair final : public CallHooks {
 public:
  HookPair(CallHooks& first, CallHooks* second) : first_(first), second_(second) {}
  void before(const Call& c) override {
    first_.before(c);
    if (second_) second_->before(c);
  }
  void after(const Call& c, proto::Response& rsp) override {
    if (second_) second_->after(c, rsp);
    first_.after(c, rsp);
  }

 private:
  CallHooks& first_;
  CallHooks* second_;
};

}  // namespace xenfs
