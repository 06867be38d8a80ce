// Durable file replacement, in one place: every file the experiment layer publishes (trial results, the experiment
// file, checkpoints) is written under a temporary name, fsync'ed, renamed over its final name, and the directory is
// fsync'ed, so that after a crash (of the process or of the machine) a reader finds the old file or the whole new one.
#pragma once

#include <string>

#include "flowlab/export.hpp"

namespace flowlab {

/// fsync(tmp); rename(tmp, final) (atomic on POSIX); fsync(the directory of final). Throws flowlab::Error naming the
/// file and the system's message when any step fails; `tmp` is left in place then.
FLOWLAB_API void durable_rename(const std::string& tmp, const std::string& final_path);

/// fsync of one file or directory. Throws flowlab::Error naming it and the system's message.
FLOWLAB_API void fsync_path(const std::string& path);

/// An exclusive lock on an output (a results file and its .trials), held for as long as the object lives, so that
/// two runners (`run`, `--resume`, `merge`, a Slurm job's merge) never write one output at once. The lock is
/// flock(2) on OUTPUT.lock, which holds "pid P on host H since T (WHAT)":
/// - a second holder is refused at once, and the message names the first one's pid, host, start and command;
/// - a runner that dies (kill -9, a node that fails) loses the lock with its process; its stale OUTPUT.lock is
///   taken over by the next runner without a word, since the kernel released the lock;
/// - on NFS, Linux maps flock to POSIX byte-range locks (NFSv4 or NLM), which hold across the nodes of a Slurm
///   cluster; a filesystem that refuses locks altogether (ENOLCK, EOPNOTSUPP) is refused with that message.
/// The lock file is removed while the lock is held, at the end; a runner that opened the old file finds it gone
/// and takes the lock on a new one.
class FLOWLAB_API OutputLock {
 public:
  /// Throws flowlab::Error when another process holds the lock or the lock file cannot be made.
  OutputLock(const std::string& output, const std::string& what);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace flowlab
