// The change-event log (docs/events.md): every change a guest makes through dom0, and every change made on dom0
// outside XenFS, is appended here as one record before anything downstream sees it. One log per dom0 state
// directory, shared by every guest session; appends come from session and worker-pool threads at once.
//
// Durability in two steps. append() write()s the record to the current segment before it returns, so the
// guest's reply goes out only after its event is in the kernel's page cache: a crash of dom0 itself loses
// nothing. A sync thread then fdatasync()s what was written, at most every `sync_interval`, and only synced
// records are offered to readers (position()), so an event is on disk before anything can publish it. The sync
// thread also starts the next segment once the current one passes its size.
//
// Layout: segment files `<first seq, 20 digits>.xev` in the directory; a new one once the current one passes
// `segment_bytes`. Records (little-endian), 64-byte header then the strings:
//   u32 len (whole record), u32 crc32 (of the bytes after it), u64 seq, f64 time_ms, u8 kind, u8 origin, u8 dir,
//   u8 reserved, u16 guest_len, u16 export_len, u16 path_len, u16 old_path_len, u32 reserved, u64 size,
//   f64 mtime_ms, u64 ino; then guest, export, path, old_path (raw bytes, no terminators).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace xenfs {

// Kept in step with EVENT_KINDS in core/events/change-event.ts (same order).
enum class EventKind : uint8_t { kCreated, kModified, kDeleted, kRenamed, kMetadata, kDirCreated, kDirDeleted };
constexpr uint8_t kEventKindCount = 7;
enum class EventOrigin : uint8_t { kGuest, kHost };

struct EventRecord {
  EventKind kind = EventKind::kCreated;
  EventOrigin origin = EventOrigin::kGuest;
  bool dir = false;
  std::string_view guest, exp, path, old_path;
  uint64_t size = 0;
  double mtime_ms = 0;
  uint64_t ino = 0;
};

constexpr size_t kEventHeader = 64;
// Longest string a record carries: paths are at most 4096 bytes (names 255, guests and exports shorter).
constexpr size_t kEventMaxString = 4096;

// Where readers may read up to: records in segments before `segment` are all complete and synced, and in
// `segment` up to byte `offset`. `last_seq` is the last synced record's seq (0: none yet).
struct EventPosition {
  uint64_t segment = 0;  // the first seq of the current segment (its file name)
  uint64_t offset = 0;
  uint64_t last_seq = 0;
};

class EventLog {
 public:
  // Called on the sync thread after records became synced; must not block (the binding hands it to JS).
  using Notify = std::function<void()>;

  // Opens (creating) the log in `dir`, recovering the current segment: a torn record at its end (a dom0 that
  // died mid-write, or a power cut before fdatasync) is cut off. Throws std::runtime_error naming the file on
  // an unusable directory or segment.
  EventLog(const std::string& dir, uint64_t segment_bytes, uint32_t sync_interval_ms, Notify notify);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Appends one record and returns its seq, or -errno (-ENAMETOOLONG for an oversized string, -EIO after the
  // log has failed, -ESHUTDOWN once closed). Thread-safe.
  int64_t append(const EventRecord& ev);
  EventPosition position();
  // Stops the sync thread after a last fdatasync; appends fail from then on. Idempotent.
  void close();
  // Appends that failed (the log's disk full or broken): every one is a change only reconciliation can recover.
  uint64_t failed() const { return failed_.load(); }

 private:
  void open_segment(uint64_t first_seq);  // under mu_
  void rotate();                          // under mu_, on the sync thread
  void recover(uint64_t first_seq);
  void sync_loop();

  std::string dir_;
  const uint64_t segment_bytes_;
  const uint32_t sync_interval_ms_;
  Notify notify_;

  std::mutex mu_;  // order of records and seq
  int fd_ = -1;
  uint64_t segment_ = 0;
  uint64_t written_ = 0;  // bytes in the current segment
  uint64_t next_seq_ = 1;
  bool broken_ = false;
  bool closed_ = false;

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool dirty_ = false;
  bool stop_ = false;
  EventPosition synced_;  // under sync_mu_
  std::atomic<uint64_t> failed_{0};
  std::thread sync_thread_;
};

// CRC-32 (IEEE, as zlib's crc32()), for torn-record detection.
uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc = 0);

}  // namespace xenfs
