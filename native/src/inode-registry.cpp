#include "inode-registry.hpp"

#include <algorithm>

namespace xenfs {

// Leaked on purpose, as the worker pool is: notifier and session threads may still touch them while the process
// exits.
InodeRegistry& InodeRegistry::shared() {
  static InodeRegistry* registry = new InodeRegistry();
  return *registry;
}

size_t InodeRegistry::KeyHash::operator()(const InodeKey& k) const noexcept {
  uint64_t h = k.ino * 0x9e3779b97f4a7c15ull ^ k.dev * 0xc2b2ae3d27d4eb4full;
  return static_cast<size_t>(h ^ (h >> 29));
}

void InodeRegistry::add(const InodeKey& key, const std::shared_ptr<AttachedFuse>& conn, uint64_t node) noexcept {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  try {
    s.map[key].push_back(Holder{conn, node});
  } catch (...) {
  }
}

void InodeRegistry::remove(const InodeKey& key, const AttachedFuse* conn, uint64_t node) noexcept {
  std::shared_ptr<AttachedFuse> last;  // released after the lock: it may be the connection's last reference
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return;
  auto& v = it->second;
  auto h = std::find_if(v.begin(), v.end(), [&](const Holder& x) { return x.conn.get() == conn && x.node == node; });
  if (h == v.end()) return;
  last = std::move(h->conn);
  *h = std::move(v.back());
  v.pop_back();
  if (v.empty()) s.map.erase(it);
}

void InodeRegistry::holders(const InodeKey& key, const AttachedFuse* self, std::vector<Holder>& out) const {
  const Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return;
  for (const auto& h : it->second)
    if (h.conn.get() != self) out.push_back(h);
}

WriterTable& WriterTable::shared() {
  static WriterTable* table = new WriterTable();
  return *table;
}

bool WriterTable::add(uint64_t ino, uint64_t session) noexcept {
  Shard& s = shards_[ino % kShards];
  std::lock_guard lock(s.mu);
  auto it = s.map.find(ino);
  if (it != s.map.end()) {
    for (auto& w : it->second)
      if (w.session == session) {
        ++w.handles;
        return true;
      }
  }
  try {
    if (it != s.map.end()) {
      it->second.push_back(Writer{session, 1});
    } else {
      s.map.emplace(ino, std::vector<Writer>{Writer{session, 1}});
      inodes_.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (...) {
    return false;
  }
  return true;
}

bool WriterTable::remove(uint64_t ino, uint64_t session) noexcept {
  Shard& s = shards_[ino % kShards];
  std::lock_guard lock(s.mu);
  auto it = s.map.find(ino);
  if (it == s.map.end()) return false;
  auto& v = it->second;
  auto w = std::find_if(v.begin(), v.end(), [&](const Writer& x) { return x.session == session; });
  if (w == v.end()) return false;
  if (--w->handles > 0) return false;
  *w = v.back();
  v.pop_back();
  if (v.empty()) {
    s.map.erase(it);
    inodes_.fetch_sub(1, std::memory_order_relaxed);
  }
  return true;
}

bool WriterTable::others(uint64_t ino, uint64_t session) const {
  if (inodes_.load(std::memory_order_relaxed) == 0) return false;
  const Shard& s = shards_[ino % kShards];
  std::lock_guard lock(s.mu);
  auto it = s.map.find(ino);
  if (it == s.map.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const Writer& x) { return x.session != session; });
}

}  // namespace xenfs
