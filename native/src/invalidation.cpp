#include "invalidation.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <string_view>
#include <vector>

#include "inode-registry.hpp"

namespace xenfs {

namespace {

constexpr uint64_t bit(uint8_t op) { return uint64_t{1} << op; }

// Replies that hand the guest attributes to cache: each says kRspVolatile while another session writes the file.
constexpr uint64_t kDescribesAttrs = bit(proto::kLookup) | bit(proto::kWalk) | bit(proto::kGetattr) |
                                     bit(proto::kSetattr) | bit(proto::kCreate) | bit(proto::kMkdir) |
                                     bit(proto::kMknod) | bit(proto::kSymlink) | bit(proto::kLink);
// Requests whose success may owe the others a notice, or changes the writer table.
constexpr uint64_t kChanges = bit(proto::kCreate) | bit(proto::kMknod) | bit(proto::kMkdir) | bit(proto::kSymlink) |
                              bit(proto::kLink) | bit(proto::kUnlink) | bit(proto::kRmdir) | bit(proto::kRename) |
                              bit(proto::kSetattr) | bit(proto::kSetxattr) | bit(proto::kRemovexattr) |
                              bit(proto::kOpen) | bit(proto::kFlush) | bit(proto::kRelease);

bool is(uint8_t op, uint64_t set) { return op < 64 && (set & bit(op)); }

std::atomic<uint64_t> next_session_id{1};

}  // namespace

// The notes one call owes the other attached connections, gathered per connection, then posted together. Without
// another connection in the process it gathers nothing and costs nothing.
class Notices {
 public:
  explicit Notices(Invalidation& inv) : inv_(inv), live_(inv.others_attached()) {
    if (live_) self_ = inv.self();
  }

  // A name appeared in or left a directory: its holders drop the name (a negative entry included) and the
  // directory's attributes and cached contents.
  void entry(uint64_t dir, std::string_view name) {
    InodeKey key;
    if (!live_ || inv_.backend_.node_inode(dir, key) < 0) return;
    add(key, 0, name);
    add(key, 0, {});
  }
  void attrs(const std::optional<InodeKey>& key) {
    if (live_ && key) add(*key, -1, {});
  }
  void attrs_of_node(uint64_t node) {
    InodeKey key;
    if (live_ && inv_.backend_.node_inode(node, key) == 0) add(key, -1, {});
  }
  void attrs_of_handle(uint64_t fh) {
    InodeKey key;
    if (live_ && inv_.backend_.handle_inode(fh, key) == 0) add(key, -1, {});
  }

  // Posts every connection's notes; with `wait`, returns once they are written or kInvalidationWait has passed.
  // Not waited for: a connection whose notifier is already stuck past the bound (one guest holding a lock must
  // cost the others one bound, not one per call), nor one stuck behind its own session's wait (a cycle).
  void deliver(bool wait) {
    if (out_.empty()) return;
    using Clock = AttachedFuse::Clock;
    const auto deadline = Clock::now() + kInvalidationWait;
    for (auto& t : out_) t.ticket = t.conn->post(t.notes);
    if (!wait) return;
    if (self_) self_->owner_waiting(true);
    for (auto& t : out_) {
      if (t.ticket == 0 || t.conn->stuck_for(kInvalidationWait)) continue;
      while (!t.conn->wait(t.ticket, std::min(deadline, Clock::now() + kCycleCheck)) && Clock::now() < deadline &&
             !t.conn->stuck_behind_owner(kCycleCheck)) {
      }
    }
    if (self_) self_->owner_waiting(false);
  }

 private:
  struct Target {
    std::shared_ptr<AttachedFuse> conn;
    std::vector<AttachedFuse::Note> notes;
    uint64_t ticket = 0;
  };

  void add(const InodeKey& key, int64_t off, std::string_view name) {
    found_.clear();
    InodeRegistry::shared().holders(key, self_.get(), found_);
    for (auto& h : found_) {
      auto t = std::find_if(out_.begin(), out_.end(), [&](const Target& x) { return x.conn == h.conn; });
      if (t == out_.end()) t = out_.insert(out_.end(), Target{h.conn, {}, 0});
      AttachedFuse::Note note{h.node, off, std::string(name)};
      if (std::find(t->notes.begin(), t->notes.end(), note) == t->notes.end()) t->notes.push_back(std::move(note));
    }
  }

  Invalidation& inv_;
  const bool live_;
  std::shared_ptr<AttachedFuse> self_;
  std::vector<InodeRegistry::Holder> found_;
  std::vector<Target> out_;
};

Invalidation::Invalidation(FileBackend& backend) : backend_(backend), id_(next_session_id.fetch_add(1)) {}

Invalidation::~Invalidation() {
  detach();
  end();
}

void Invalidation::attach(const std::shared_ptr<AttachedFuse>& conn) {
  {
    std::lock_guard lock(mu_);
    conn_ = conn;
  }
  watched_ = conn;
  InodeRegistry::shared().connection_added();
  backend_.watch_nodes(this);
}

void Invalidation::detach() {
  if (!watched_) return;
  backend_.watch_nodes(nullptr);
  watched_.reset();
  InodeRegistry::shared().connection_removed();
  std::lock_guard lock(mu_);
  conn_.reset();
}

void Invalidation::end() {
  std::unordered_map<uint64_t, Writable> gone;
  {
    std::lock_guard lock(mu_);
    gone.swap(writable_);
  }
  try {
    Notices n(*this);
    for (auto& [fh, w] : gone)
      if (WriterTable::shared().remove(w.key.ino, id_) || w.dirty) n.attrs(w.key);
    n.deliver(false);
  } catch (...) {
    // out of memory: the others keep what they cached until it times out
  }
}

void Invalidation::node_added(uint64_t id, const InodeKey& key) noexcept {
  if (watched_) InodeRegistry::shared().add(key, watched_, id);
}

void Invalidation::node_dropped(uint64_t id, const InodeKey& key) noexcept {
  if (watched_) InodeRegistry::shared().remove(key, watched_.get(), id);
}

bool Invalidation::others_attached() {
  const int n = InodeRegistry::shared().connections();
  if (n == 0) return false;
  std::lock_guard lock(mu_);
  return n > (conn_ ? 1 : 0);
}

std::shared_ptr<AttachedFuse> Invalidation::self() {
  std::lock_guard lock(mu_);
  return conn_;
}

void Invalidation::after(const Call& c, proto::Response& rsp, const Victims& victims) {
  const proto::Request& q = c.req;
  if (is(q.op, kDescribesAttrs) && WriterTable::shared().others(rsp.attr.ino, id_)) rsp.flags |= proto::kRspVolatile;
  if (q.op == proto::kWrite || q.op == proto::kFallocate) {
    // Owed at the handle's next FLUSH or RELEASE, not per write: a guest writing through dom0 writes in pieces.
    std::lock_guard lock(mu_);
    auto it = writable_.find(q.fh);
    if (it != writable_.end()) it->second.dirty = true;
    return;
  }
  if (!is(q.op, kChanges)) return;
  Notices n(*this);
  switch (q.op) {
    case proto::kCreate:
      n.entry(q.node, c.name1);
      opened(q, rsp, n);
      break;
    case proto::kMknod:
    case proto::kMkdir:
    case proto::kSymlink:
      n.entry(q.node, c.name1);
      break;
    case proto::kLink:  // the source gains a link
      n.entry(q.node, c.name1);
      n.attrs_of_node(q.arg64);
      break;
    case proto::kUnlink:
    case proto::kRmdir:  // the victim loses one (and may stay open, or linked elsewhere, in another guest)
      n.entry(q.node, c.name1);
      n.attrs(victims[0]);
      break;
    case proto::kRename:  // both names, both directories, the moved inode (ctime) and any it replaced (nlink)
      n.entry(q.node, c.name1);
      n.entry(q.arg64, c.name2);
      n.attrs(victims[0]);
      n.attrs(victims[1]);
      break;
    case proto::kSetattr:
      if (q.fh != 0) n.attrs_of_handle(q.fh);
      else n.attrs_of_node(q.node);
      break;
    case proto::kSetxattr:
    case proto::kRemovexattr:
      n.attrs_of_node(q.node);
      break;
    case proto::kOpen:
      opened(q, rsp, n);
      break;
    case proto::kFlush:
      flushed(q.fh, false, n);
      break;
    case proto::kRelease:
      flushed(q.fh, true, n);
      break;
    default:
      break;
  }
  n.deliver(true);
}

// An open that may change the file: the others drop its attributes now, and while the handle stays open for
// writing their replies about it say volatile (with passthrough, its writes never come through dom0).
void Invalidation::opened(const proto::Request& q, const proto::Response& rsp, Notices& n) {
  const int flags = static_cast<int>(q.arg32a);
  const bool writes = (flags & O_ACCMODE) != O_RDONLY;
  if (!writes && !(flags & O_TRUNC)) return;
  InodeKey key;
  if (backend_.node_inode(q.op == proto::kCreate ? rsp.node : q.node, key) < 0) return;
  if (writes) {
    std::lock_guard lock(mu_);
    auto [it, fresh] = writable_.try_emplace(rsp.fh, Writable{key, false});
    if (fresh && !WriterTable::shared().add(key.ino, id_)) writable_.erase(it);
  }
  n.attrs(key);
}

// FLUSH of a handle written through dom0, or RELEASE of a writable one: the others drop the attributes they may
// have cached meanwhile. At RELEASE the session's last writer of the file also ends its volatile replies.
void Invalidation::flushed(uint64_t fh, bool release, Notices& n) {
  Writable w;
  {
    std::lock_guard lock(mu_);
    auto it = writable_.find(fh);
    if (it == writable_.end()) return;
    w = it->second;
    it->second.dirty = false;
    if (release) writable_.erase(it);
  }
  const bool last = release && WriterTable::shared().remove(w.key.ino, id_);
  if (last || w.dirty) n.attrs(w.key);
}

void InvalidationCall::before(const Call& c) {
  const uint8_t op = c.req.op;
  if (op != proto::kUnlink && op != proto::kRmdir && op != proto::kRename) return;
  if (!inv_.others_attached()) return;
  // After the call the name is gone: what it named is only known now.
  InodeKey key;
  if (inv_.backend_.entry_inode(c.req.node, c.name1, key) == 0) victims_[0] = key;
  if (op == proto::kRename && inv_.backend_.entry_inode(c.req.arg64, c.name2, key) == 0) victims_[1] = key;
}

void InvalidationCall::after(const Call& c, proto::Response& rsp) {
  if (rsp.status != 0) return;
  try {
    inv_.after(c, rsp, victims_);
  } catch (...) {
    // out of memory: the reply stands; the others keep what they cached until it times out
  }
}

}  // namespace xenfs
