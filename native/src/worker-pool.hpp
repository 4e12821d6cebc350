// A fixed pool of threads shared by every guest's engine, for operations that may block on the disk (reads,
// writes, fsync, namespace changes). Fast metadata operations never come here: they run on the guest's own
// ring thread, which saves a cross-thread wake-up (tens of microseconds on this VM) per request.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace xenfs {

class WorkerPool {
 public:
  static WorkerPool& shared();
  // Threads start on first use; `threads` only matters before that.
  static void configure(size_t threads);
  void submit(std::function<void()> task);
  ~WorkerPool();

 private:
  explicit WorkerPool(size_t threads);
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace xenfs
