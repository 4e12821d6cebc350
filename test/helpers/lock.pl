#!/usr/bin/perl
# fcntl(2) byte-range locks from the command line, for tests of locks through a mount (Node has no fcntl locks;
# perl-base is part of every Debian system).
#   perl lock.pl OP FILE TYPE START LEN [HOLD_MS] [ALARM_S]
#   OP: setlk | setlkw | getlk | ofd-setlk | ofd-setlkw     TYPE: r | w | u
# Prints one line: "ok", "conflict TYPE START LEN" (getlk), "none" (getlk), or "err ERRNO_NAME"; then holds the
# file open (and its locks) for HOLD_MS before exiting. ALARM_S interrupts a waiting lock with SIGALRM.
use strict;
use warnings;
use Fcntl qw(F_GETLK F_SETLK F_SETLKW F_RDLCK F_WRLCK F_UNLCK SEEK_SET O_RDWR);
use POSIX qw(strerror);
use Errno;
$| = 1;
my ($op, $file, $type, $start, $len, $hold, $alarm) = @ARGV;
my %types = (r => F_RDLCK, w => F_WRLCK, u => F_UNLCK);
my %cmds = (setlk => F_SETLK, setlkw => F_SETLKW, getlk => F_GETLK, 'ofd-setlk' => 37, 'ofd-setlkw' => 38);
die "usage: lock.pl OP FILE TYPE START LEN [HOLD_MS] [ALARM_S]\n" unless defined $len && exists $cmds{$op} && exists $types{$type};
sysopen(my $fh, $file, O_RDWR) or do { print "err open ", ($!{ENOENT} ? 'ENOENT' : $!+0), "\n"; exit 1 };
# struct flock on x86-64: short l_type, short l_whence, (pad), off_t l_start, off_t l_len, pid_t l_pid, (pad).
my $fl = pack('s s x4 q q l x4', $types{$type}, SEEK_SET, $start, $len, 0);
$SIG{ALRM} = sub { };
alarm($alarm) if $alarm;
my $rc = fcntl($fh, $cmds{$op}, $fl);
alarm(0);
if (!$rc) {
  my %names = (Errno::EAGAIN() => 'EAGAIN', Errno::EACCES() => 'EACCES', Errno::EINTR() => 'EINTR',
    Errno::EDEADLK() => 'EDEADLK', Errno::ENOLCK() => 'ENOLCK', Errno::EBADF() => 'EBADF', Errno::EINVAL() => 'EINVAL',
    Errno::EIO() => 'EIO', Errno::ENOSYS() => 'ENOSYS');
  print "err ", ($names{$!+0} // $!+0), "\n";
  exit 2;
}
if ($op eq 'getlk') {
  my ($t, $w, $s, $l, $p) = unpack('s s x4 q q l x4', $fl);
  my %back = reverse %types;
  print $t == F_UNLCK ? "none\n" : "conflict $back{$t} $s $l\n";
} else {
  print "ok\n";
}
select(undef, undef, undef, $hold / 1000) if $hold;
exit 0;
