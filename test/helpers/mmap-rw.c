// Shared file mappings from the command line, for tests of mmap through a mount (Node cannot map files):
//   mmap-rw write FILE OFFSET TEXT   stores TEXT at OFFSET through a MAP_SHARED mapping (no msync, no write(2))
//   mmap-rw read FILE OFFSET LEN     prints LEN bytes at OFFSET, read through a MAP_SHARED mapping
// Exits 0, or 1 with the failing call on stderr.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char* what) {
  perror(what);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: mmap-rw write FILE OFFSET TEXT | read FILE OFFSET LEN\n");
    return 2;
  }
  int writing = strcmp(argv[1], "write") == 0;
  size_t off = strtoull(argv[3], NULL, 10);
  size_t len = writing ? strlen(argv[4]) : strtoull(argv[4], NULL, 10);
  int fd = open(argv[2], writing ? O_RDWR : O_RDONLY);
  if (fd < 0) return fail("open");
  struct stat st;
  if (fstat(fd, &st) < 0) return fail("fstat");
  if (off + len > (size_t)st.st_size) {
    fprintf(stderr, "range past the end of the file\n");
    return 1;
  }
  char* p = mmap(NULL, (size_t)st.st_size, writing ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("mmap");
  if (writing) memcpy(p + off, argv[4], len);
  else fwrite(p + off, 1, len, stdout);
  munmap(p, (size_t)st.st_size);
  close(fd);
  return 0;
}
