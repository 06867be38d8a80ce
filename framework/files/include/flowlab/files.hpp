// Durable file replacement, in one place: every file the experiment layer publishes (trial results, the experiment
// file, checkpoints) is written under a temporary name, fsync'ed, renamed over its final name, and the directory is
// fsync'ed, so that after a crash (of the process or of the machine) a reader finds the old file or the whole new one.
#pragma once

#include <string>

#include "flowlab/errors.hpp"
#include "flowlab/export.hpp"

namespace flowlab {

/// fsync(tmp); rename(tmp, final) (atomic on POSIX); fsync(the directory of final). Throws flowlab::Error naming the
/// file and the system's message when any step fails; `tmp` is left in place then.
FLOWLAB_API void durable_rename(const std::string& tmp, const std::string& final_path);

/// fsync of one file or directory. Throws flowlab::Error naming it and the system's message.
FLOWLAB_API void fsync_path(const std::string& path);

/// A file that could not be written: "No space left on device (ENOSPC) writing FILE". `err()` is the errno.
class FLOWLAB_API WriteError : public Error {
 public:
  WriteError(const std::string& path, int err, const std::string& doing = "writing");
  ~WriteError() override;
  int err() const { return err_; }
  const std::string& path() const { return path_; }
  /// A full or failing disk (ENOSPC, EDQUOT, EFBIG, EIO, EROFS): nothing the trial itself did wrong, so the run
  /// stops and --resume continues it once space is freed, instead of recording the trial as failed.
  bool disk_full_or_failing() const;

 private:
  std::string path_;
  int err_;
};

/// errno's symbolic name: "ENOSPC", "EIO", ...; "errno N" for others.
FLOWLAB_API std::string errno_name(int err);

/// Writes `size` bytes to `path` through `path`.tmp (or `tmp`): open, write() until done (retrying EINTR and short
/// writes), fsync, close, rename, fsync the directory, each checked. On any failure the temporary is removed, `path`
/// is left as it was, and a WriteError names the file and errno. Every file flowlab publishes goes through here
/// (HDF5 results, checkpoints, YAML), so a full disk is reported the same way everywhere.
/// For tests: FLOWLAB_TEST_FAIL_WRITE=SUFFIX:ERRNO[:N] (ERRNO a name such as ENOSPC or EIO, or a number) makes
/// writes of paths that end with SUFFIX fail with that error after half of their bytes, in each process after its
/// first N such writes (default 0).
FLOWLAB_API void write_file(const std::string& path, const char* data, size_t size, const std::string& tmp = "");
inline void write_file(const std::string& path, const std::string& bytes, const std::string& tmp = "") {
  write_file(path, bytes.data(), bytes.size(), tmp);
}

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
