// A table of server-assigned ids for objects a guest names (nodes, handles). Not thread-safe: the owner
// locks around it.
#pragma once

#include <sys/random.h>

#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace xenfs {

// Ids are (generation << 32) | (index + 1): 0 is never an id, and a stale id never reaches the slot's next
// occupant because freeing a slot bumps its generation. Generation 0 is reserved for slots pinned at
// construction (pin), which therefore get ids 1..n and are never freed.
//
// Each table starts its generations at a random value: a guest that reconnects to a restarted dom0 may still
// hold ids from the old session, and with fixed generations they would name the new session's objects (its
// first open file would answer to the old first handle). With random ones a stale id misses with 1 - 2^-32.
template <class T>
class SlotTable {
 public:
  SlotTable() {
    if (getrandom(&first_gen_, sizeof first_gen_, 0) != sizeof first_gen_) first_gen_ = 0x9e3779b9u;
    if (first_gen_ == 0) first_gen_ = 1;
  }

  // Pins value in slot index with generation 0: id index + 1. Not counted in live().
  void pin(size_t index, T value) {
    if (slots_.size() <= index) slots_.resize(index + 1);
    slots_[index].gen = 0;
    slots_[index].live = true;
    slots_[index].value = std::move(value);
  }

  T* find(uint64_t id) {
    const uint64_t index = (id & 0xffffffffu) - 1;  // id 0 wraps to a huge index and misses
    if (index >= slots_.size()) return nullptr;
    Slot& s = slots_[index];
    return s.live && s.gen == (id >> 32) ? &s.value : nullptr;
  }
  const T* find(uint64_t id) const { return const_cast<SlotTable*>(this)->find(id); }

  // Throws std::bad_alloc only, and then changes nothing.
  uint64_t insert(T value) {
    uint32_t index;
    if (free_.empty()) {
      if (slots_.size() >= UINT32_MAX - 1) throw std::bad_alloc();
      free_.reserve(slots_.size() + 1);  // so take() never allocates
      slots_.emplace_back();
      slots_.back().gen = first_gen_;
      index = static_cast<uint32_t>(slots_.size() - 1);
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Slot& s = slots_[index];
    s.live = true;
    s.value = std::move(value);
    ++live_;
    return id_of(index);
  }

  // Frees the slot and hands back what it held (a default T for an unknown id). Never allocates.
  T take(uint64_t id) {
    T* v = find(id);
    if (!v || (id >> 32) == 0) return T{};
    const uint32_t index = static_cast<uint32_t>((id & 0xffffffffu) - 1);
    Slot& s = slots_[index];
    T value = std::move(s.value);
    s.value = T{};
    s.live = false;
    if (++s.gen == 0) s.gen = 1;
    free_.push_back(index);
    --live_;
    return value;
  }

  // Frees every unpinned slot, handing each value to sink(T&&). Never allocates.
  template <class F>
  void drain(F&& sink) {
    for (size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].live && slots_[i].gen != 0) sink(take(id_of(static_cast<uint32_t>(i))));
  }

  // Calls f(value) for every pinned slot.
  template <class F>
  void for_each_pinned(F&& f) {
    for (auto& s : slots_)
      if (s.live && s.gen == 0) f(s.value);
  }

  // Calls f(id, value) for every live slot, pinned ones included.
  template <class F>
  void for_each(F&& f) {
    for (size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].live) f(id_of(static_cast<uint32_t>(i)), slots_[i].value);
  }

  // Live unpinned slots.
  uint32_t live() const { return live_; }

 private:
  struct Slot {
    uint32_t gen = 1;
    bool live = false;
    T value{};
  };
  uint64_t id_of(uint32_t index) const {
    return (static_cast<uint64_t>(slots_[index].gen) << 32) | (static_cast<uint64_t>(index) + 1);
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint32_t live_ = 0;
  uint32_t first_gen_ = 1;
};

}  // namespace xenfs
