// Grant tables with Xen's v1 semantics, emulated over a sealed memfd.
//
// The granting domain writes entries into a table that lives in its own memory; the grantee (dom0) plays the
// hypervisor's part when it maps: it checks the entry and pins it by setting GTF_reading/GTF_writing in the shared
// flags, which is what makes the granter's end-access fail while a mapping exists.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace xenfs {

constexpr uint16_t GTF_permit_access = 1;
constexpr uint16_t GTF_readonly = 1 << 2;
constexpr uint16_t GTF_reading = 1 << 3;
constexpr uint16_t GTF_writing = 1 << 4;
constexpr uint16_t kDom0 = 0;

// xen/include/public/grant_table.h, struct grant_entry_v1
struct GrantEntry {
  uint16_t flags;
  uint16_t domid;
  uint32_t frame;
};
static_assert(sizeof(GrantEntry) == 8, "grant entry v1 is 8 bytes");

// Granter side: the table inside the granting domain's own mapping of its memory.
class GrantTableCore {
 public:
  GrantTableCore(uint8_t* table, uint32_t entries, uint32_t mem_pages)
      : table_(table), entries_(entries), mem_pages_(mem_pages) {}
  // 0, -EINVAL (ref or frame out of range), -EBUSY (entry in use).
  int grant(uint32_t ref, uint16_t domid, uint32_t frame, bool readonly);
  // 0, or -EBUSY while the grantee has the entry mapped (gnttab_end_foreign_access_ref semantics).
  int end_access(uint32_t ref);
  uint32_t entries() const { return entries_; }

 private:
  uint8_t* table_;
  uint32_t entries_;
  uint32_t mem_pages_;
};

// One mapping: byte ranges in dom0's address space, one per run of contiguous frames.
struct GrantMapping {
  std::vector<iovec> runs;
  std::vector<uint32_t> refs;
  std::vector<uint8_t> pins;  // the GTF_ bits this mapping set per ref
  bool writable = false;
};

// Grantee side (dom0): maps references granted by one guest. Thread-safe.
class GrantMapper {
 public:
  // `fd` is the guest's memfd (dup'ed here), `table_offset` the byte offset of its grant table in it.
  GrantMapper(int fd, uint32_t mem_pages, size_t table_offset, uint32_t entries, uint16_t self_domid,
              uint32_t max_mapped);
  ~GrantMapper();
  GrantMapper(const GrantMapper&) = delete;
  GrantMapper& operator=(const GrantMapper&) = delete;

  bool ok() const { return table_ != nullptr; }
  const std::string& error() const { return error_; }

  // Maps a batch of references, each as one 4 KiB page, writable or read-only. Checks every entry: right
  // grantee, permit bit, frame inside the guest's memory, no write access to a read-only grant, within the
  // mapped-grant limit. 0 or -errno (-EINVAL bad ref, -EPERM wrong domain or not granted, -EACCES write to a
  // read-only grant, -ENOBUFS limit); on error nothing stays mapped or pinned.
  int map(const uint32_t* refs, uint32_t n, bool writable, GrantMapping& out);
  // Maps the references into one contiguous, writable range (rings span several pages).
  int map_contiguous(const uint32_t* refs, uint32_t n, GrantMapping& out);
  void unmap(GrantMapping& m);
  uint32_t mapped() const { return mapped_.load(std::memory_order_relaxed); }

 private:
  int pin_all(const uint32_t* refs, uint32_t n, bool writable, std::vector<uint32_t>& frames, GrantMapping& out);
  int pin(uint32_t ref, bool writable, uint32_t& frame, uint8_t& bits);
  void unpin(uint32_t ref, uint8_t bits);
  std::atomic<uint64_t>* entry(uint32_t ref) const;

  int fd_ = -1;
  uint32_t mem_pages_;
  uint32_t entries_;
  uint16_t self_;
  uint32_t max_mapped_;
  uint8_t* table_ = nullptr;
  size_t table_map_len_ = 0;
  size_t table_delta_ = 0;
  std::mutex mu_;
  std::vector<uint16_t> read_pins_, write_pins_;  // dom0-private pin counts; the shared bits mirror them
  std::atomic<uint32_t> mapped_{0};
  std::string error_;
};

}  // namespace xenfs
