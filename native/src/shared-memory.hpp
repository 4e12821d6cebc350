// Domain memory: a sealed memfd standing in for a domain's RAM. The guest creates and maps it; dom0 receives
// the fd over the control channel and maps pages of it only through grant references.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace xenfs {

// Creates a memfd of `pages` 4 KiB pages, sealed against shrinking and growing so that a peer that maps it
// can never be hit by SIGBUS from a truncate. Returns the fd or -errno.
int create_domain_memory(const char* name, uint32_t pages);

// Checks that a foreign fd is a memfd of at least `bytes` with F_SEAL_SHRINK applied. Returns 0 or -errno and
// fills `why` with the reason for a log line.
int check_domain_memory(int fd, size_t bytes, std::string& why);

// mmap wrapper returning nullptr on failure.
void* map_shared(int fd, size_t offset, size_t bytes, bool writable);

}  // namespace xenfs
