#include "shared-memory.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol.hpp"

namespace xenfs {

int create_domain_memory(const char* name, uint32_t pages) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  if (ftruncate(fd, static_cast<off_t>(pages) * proto::kPageSize) < 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int check_domain_memory(int fd, size_t bytes, std::string& why) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    why = "domain memory is not a sealable memfd";
    return -EINVAL;
  }
  // Without F_SEAL_SHRINK the guest could truncate its memory under dom0's mappings and crash dom0 with SIGBUS.
  if (!(seals & F_SEAL_SHRINK)) {
    why = "domain memory is not sealed against shrinking";
    return -EINVAL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (static_cast<size_t>(st.st_size) < bytes) {
    why = "domain memory is smaller than the layout it declares";
    return -EINVAL;
  }
  return 0;
}

void* map_shared(int fd, size_t offset, size_t bytes, bool writable) {
  void* p = mmap(nullptr, bytes, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, static_cast<off_t>(offset));
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace xenfs
