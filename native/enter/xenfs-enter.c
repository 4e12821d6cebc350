// xenfs-enter: runs a guest's front end unprivileged, as a VM's kernel would be, in a user namespace of its own
// (uid and gid 0 there are BASE on the host, COUNT ids mapped) with new mount, PID and network namespaces, and a
// /dev/fuse descriptor opened for it in that user namespace.
//
//   xenfs-enter BASE COUNT -- PROGRAM [ARGS...]
//
// The descriptor is why this is a program and not unshare(1): the kernel mounts a FUSE connection only in the user
// namespace its /dev/fuse was opened in, and /dev/fuse may be root's alone (mode 0600). So the opening happens
// after the user namespace exists and before the ids change: still host uid 0, the owner, which needs no
// capability. PROGRAM gets it as XENFS_FUSE_FD. It runs as PID 1 of the new PID namespace; SIGINT and SIGTERM sent
// to xenfs-enter are passed to it, and its exit status is xenfs-enter's. Needs root (it writes the id maps).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t forward_to = -1;

static void forward(int sig) {
  if (forward_to > 0) kill(forward_to, sig);
}

static void die(const char* what) {
  fprintf(stderr, "xenfs-enter: %s: %s\n", what, strerror(errno));
  _exit(125);
}

static int write_file(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int err = errno;
  close(fd);
  errno = err;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int wait_for(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 125;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void on_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

// In the new user namespace: open /dev/fuse, become its root, make the other namespaces, and run PROGRAM as PID 1.
static int inside(int ready_w, int go_r, char** argv) {
  if (unshare(CLONE_NEWUSER) < 0) die("unshare(user)");
  char c = 1;
  if (write(ready_w, &c, 1) != 1) die("telling the parent");
  if (read(go_r, &c, 1) != 1) die("waiting for the id maps");
  int fuse = open("/dev/fuse", O_RDWR);  // not close-on-exec: PROGRAM inherits it
  if (fuse < 0) die("open /dev/fuse");
  if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) die("becoming the namespace's root");
  if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0) die("unshare(mount, pid, net)");
  if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("making mounts private");
  char num[16];
  snprintf(num, sizeof num, "%d", fuse);
  if (setenv("XENFS_FUSE_FD", num, 1) < 0) die("setenv");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execvp(argv[0], argv);
    die(argv[0]);
  }
  close(fuse);
  forward_to = child;
  on_signals();
  return wait_for(child);
}

int main(int argc, char** argv) {
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: xenfs-enter BASE COUNT -- PROGRAM [ARGS...]\n");
    return 2;
  }
  char* end;
  unsigned long base = strtoul(argv[1], &end, 10);
  if (*end || base == 0 || base > 0xfffffffful) {
    fprintf(stderr, "xenfs-enter: BASE must be a host uid above 0\n");
    return 2;
  }
  unsigned long count = strtoul(argv[2], &end, 10);
  if (*end || count == 0 || count > 0xfffffffful - base) {
    fprintf(stderr, "xenfs-enter: COUNT must be at least 1 and keep BASE + COUNT a uid\n");
    return 2;
  }
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    _exit(inside(ready[1], go[0], argv + 4));
  }
  forward_to = pid;
  on_signals();
  char c;
  if (read(ready[0], &c, 1) != 1) return wait_for(pid);
  char path[64], map[64];
  snprintf(map, sizeof map, "0 %lu %lu\n", base, count);
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  if (write_file(path, map) < 0) die("writing uid_map");
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
  if (write_file(path, map) < 0) die("writing gid_map");
  if (write(go[1], &c, 1) != 1) die("telling the child");
  return wait_for(pid);
}
