#include "worker-pool.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace xenfs {

namespace {
std::atomic<size_t> configured_threads{4};
}

void WorkerPool::configure(size_t threads) {
  if (threads >= 1 && threads <= 64) configured_threads.store(threads);
}

WorkerPool& WorkerPool::shared() {
  // Leaked on purpose: pool threads may still be finishing a request while the process exits, and destroying
  // the pool under them at static-destruction time would turn a clean exit into a crash.
  static WorkerPool* pool = new WorkerPool(configured_threads.load());
  return *pool;
}

WorkerPool::WorkerPool(size_t threads) {
  for (size_t i = 0; i < threads; i++) threads_.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void WorkerPool::run() {
  // Pool threads act for guests under their identities (FsIdentity); root's groups must not come along.
  syscall(SYS_setgroups, 0, nullptr);
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace xenfs
