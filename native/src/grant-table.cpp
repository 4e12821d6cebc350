#include "grant-table.hpp"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "protocol.hpp"
#include "shared-memory.hpp"

namespace xenfs {

namespace {

uint64_t pack(GrantEntry e) {
  uint64_t v;
  __builtin_memcpy(&v, &e, sizeof v);
  return v;
}

GrantEntry unpack(uint64_t v) {
  GrantEntry e;
  __builtin_memcpy(&e, &v, sizeof e);
  return e;
}

}  // namespace

int GrantTableCore::grant(uint32_t ref, uint16_t domid, uint32_t frame, bool readonly) {
  if (ref >= entries_ || frame >= mem_pages_) return -EINVAL;
  auto* slot = reinterpret_cast<std::atomic<uint64_t>*>(table_ + size_t{ref} * sizeof(GrantEntry));
  GrantEntry cur = unpack(slot->load(std::memory_order_acquire));
  if (cur.flags & (GTF_permit_access | GTF_reading | GTF_writing)) return -EBUSY;
  GrantEntry next{static_cast<uint16_t>(GTF_permit_access | (readonly ? GTF_readonly : 0)), domid, frame};
  // One release store publishes domid, frame and flags together: the grantee never sees a half-written entry.
  slot->store(pack(next), std::memory_order_release);
  return 0;
}

int GrantTableCore::end_access(uint32_t ref) {
  if (ref >= entries_) return -EINVAL;
  auto* slot = reinterpret_cast<std::atomic<uint64_t>*>(table_ + size_t{ref} * sizeof(GrantEntry));
  uint64_t cur = slot->load(std::memory_order_acquire);
  for (;;) {
    GrantEntry e = unpack(cur);
    if (e.flags & (GTF_reading | GTF_writing)) return -EBUSY;
    GrantEntry cleared{0, e.domid, e.frame};
    if (slot->compare_exchange_weak(cur, pack(cleared), std::memory_order_acq_rel)) return 0;
  }
}

GrantMapper::GrantMapper(int fd, uint32_t mem_pages, size_t table_offset, uint32_t entries, uint16_t self_domid,
                         uint32_t max_mapped)
    : mem_pages_(mem_pages), entries_(entries), self_(self_domid), max_mapped_(max_mapped),
      read_pins_(entries), write_pins_(entries) {
  size_t bytes = size_t{entries} * sizeof(GrantEntry);
  if (table_offset % proto::kPageSize != 0 || table_offset + bytes > size_t{mem_pages} * proto::kPageSize) {
    error_ = "grant table lies outside the domain's memory or is not page-aligned";
    return;
  }
  // Frames are checked against mem_pages, so mem_pages must be what the memfd really holds, and the memfd must be
  // sealed against shrinking: a page that vanished under a mapping would kill dom0 with SIGBUS.
  if (check_domain_memory(fd, size_t{mem_pages} * proto::kPageSize, error_) < 0) return;
  fd_ = dup(fd);
  if (fd_ < 0) {
    error_ = "dup of domain memory failed";
    return;
  }
  table_map_len_ = (bytes + proto::kPageSize - 1) / proto::kPageSize * proto::kPageSize;
  table_ = static_cast<uint8_t*>(map_shared(fd_, table_offset, table_map_len_, true));
  if (!table_) error_ = "mapping the grant table failed";
}

GrantMapper::~GrantMapper() {
  if (table_) munmap(table_, table_map_len_);
  if (fd_ >= 0) close(fd_);
}

std::atomic<uint64_t>* GrantMapper::entry(uint32_t ref) const {
  return reinterpret_cast<std::atomic<uint64_t>*>(table_ + size_t{ref} * sizeof(GrantEntry));
}

// Called with mu_ held. Reads the guest-writable entry once into a local copy, checks the copy, and pins it with
// a compare-and-swap of the whole entry so that what was checked is exactly what got pinned.
int GrantMapper::pin(uint32_t ref, bool writable, uint32_t& frame, uint8_t& bits) {
  if (ref >= entries_) return -EINVAL;
  auto* slot = entry(ref);
  uint64_t raw = slot->load(std::memory_order_acquire);
  for (;;) {
    GrantEntry e = unpack(raw);
    if (!(e.flags & GTF_permit_access) || e.domid != self_) return -EPERM;
    if (e.frame >= mem_pages_) return -EINVAL;
    if (writable && (e.flags & GTF_readonly)) return -EACCES;
    uint16_t want = static_cast<uint16_t>(GTF_reading | (writable ? GTF_writing : 0));
    GrantEntry pinned{static_cast<uint16_t>(e.flags | want), e.domid, e.frame};
    if (slot->compare_exchange_weak(raw, pack(pinned), std::memory_order_acq_rel)) {
      frame = e.frame;
      bits = static_cast<uint8_t>(want);
      read_pins_[ref]++;
      if (writable) write_pins_[ref]++;
      return 0;
    }
  }
}

// Called with mu_ held. Clears the shared bits only when no other mapping still needs them.
void GrantMapper::unpin(uint32_t ref, uint8_t bits) {
  uint16_t clear = 0;
  if ((bits & GTF_reading) && --read_pins_[ref] == 0) clear |= GTF_reading;
  if ((bits & GTF_writing) && --write_pins_[ref] == 0) clear |= GTF_writing;
  if (!clear) return;
  auto* flags = reinterpret_cast<std::atomic<uint16_t>*>(table_ + size_t{ref} * sizeof(GrantEntry));
  flags->fetch_and(static_cast<uint16_t>(~clear), std::memory_order_acq_rel);
}

int GrantMapper::pin_all(const uint32_t* refs, uint32_t n, bool writable, std::vector<uint32_t>& frames,
                         GrantMapping& out) {
  out.runs.clear();
  out.refs.clear();
  out.pins.clear();
  out.writable = writable;
  if (!table_) return -EIO;
  frames.resize(n);
  std::lock_guard<std::mutex> lock(mu_);
  if (mapped_.load(std::memory_order_relaxed) + n > max_mapped_) return -ENOBUFS;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t bits = 0;
    int rc = pin(refs[i], writable, frames[i], bits);
    if (rc < 0) {
      for (uint32_t j = 0; j < i; j++) unpin(out.refs[j], out.pins[j]);
      out.refs.clear();
      out.pins.clear();
      return rc;
    }
    out.refs.push_back(refs[i]);
    out.pins.push_back(bits);
  }
  mapped_.fetch_add(n, std::memory_order_relaxed);
  return 0;
}

int GrantMapper::map(const uint32_t* refs, uint32_t n, bool writable, GrantMapping& out) {
  std::vector<uint32_t> frames;
  int rc = pin_all(refs, n, writable, frames, out);
  if (rc < 0 || n == 0) return rc;
  // Frames that follow each other in the guest's memory become one mmap: buffers the guest allocates
  // contiguously then cost one mapping per request instead of one per page.
  uint32_t i = 0;
  while (i < n) {
    uint32_t j = i + 1;
    while (j < n && frames[j] == frames[j - 1] + 1) j++;
    size_t len = size_t{j - i} * proto::kPageSize;
    void* p = map_shared(fd_, size_t{frames[i]} * proto::kPageSize, len, writable);
    if (!p) {
      unmap(out);
      return -ENOMEM;
    }
    out.runs.push_back({p, len});
    i = j;
  }
  return 0;
}

int GrantMapper::map_contiguous(const uint32_t* refs, uint32_t n, GrantMapping& out) {
  std::vector<uint32_t> frames;
  int rc = pin_all(refs, n, true, frames, out);
  if (rc < 0 || n == 0) return rc;
  // One reserved range with each page mapped into place, so a multi-page ring reads as one array whatever
  // frames the guest chose. The frames are dom0's checked copies, never re-read from the guest's table.
  size_t total = size_t{n} * proto::kPageSize;
  void* base = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    unmap(out);
    return -ENOMEM;
  }
  out.runs.assign(1, iovec{base, total});
  for (uint32_t k = 0; k < n; k++) {
    void* p = mmap(static_cast<uint8_t*>(base) + size_t{k} * proto::kPageSize, proto::kPageSize,
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd_, off_t{frames[k]} * proto::kPageSize);
    if (p == MAP_FAILED) {
      unmap(out);
      return -ENOMEM;
    }
  }
  return 0;
}

void GrantMapper::unmap(GrantMapping& m) {
  for (auto& run : m.runs) munmap(run.iov_base, run.iov_len);
  m.runs.clear();
  if (m.refs.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < m.refs.size(); i++) unpin(m.refs[i], m.pins[i]);
  mapped_.fetch_sub(static_cast<uint32_t>(m.refs.size()), std::memory_order_relaxed);
  m.refs.clear();
  m.pins.clear();
}

}  // namespace xenfs
