// EventLog: the JavaScript handle on the change-event log (event-log.hpp).
//   new EventLog(dir, { segmentBytes, syncIntervalMs }, onSynced)
//       opens (creating, recovering) the log in `dir`; throws with the file on an unusable directory or segment.
//       onSynced() runs on the JS thread after newly appended records reached the disk; it carries nothing: call
//       position() for where readers may now read up to.
//   .append({ kind, origin, dir, guest, export, path, oldPath?, size, mtime, ino })   kind and origin as indexes
//       into EVENT_KINDS and ['guest', 'host']; returns the record's seq; throws with `errno` when it failed.
//   .position()   { segment, offset, lastSeq }: segments before `segment`, and `segment` up to `offset`, are whole
//                 and synced.
//   .failed()     appends that failed since the log was opened (guests' changes only reconciliation recovers)
//   .close()      a last fdatasync, then appends fail; idempotent.
// A guest's Engine reports into a log given as { events: { log, guest, exports: string[] } } (engine-binding.hpp).
#pragma once

#include <napi.h>

#include <memory>

#include "event-log.hpp"

namespace xenfs {

class EventLogHandle : public Napi::ObjectWrap<EventLogHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EventLogHandle(const Napi::CallbackInfo& info);
  ~EventLogHandle() override;

  // The log behind a JS value, or nullptr when it is not an open EventLog.
  static std::shared_ptr<EventLog> from(Napi::Env env, const Napi::Value& v);

 private:
  Napi::Value Append(const Napi::CallbackInfo& info);
  Napi::Value Position(const Napi::CallbackInfo& info);
  Napi::Value Failed(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void CloseLog();

  std::shared_ptr<EventLog> log_;
  Napi::ThreadSafeFunction on_synced_;
  bool tsfn_live_ = false;
};

}  // namespace xenfs
