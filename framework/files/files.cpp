// Durable replacement of files: fsync the new file, rename it, fsync the directory (see files.hpp).
#include "flowlab/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <filesystem>

#include "flowlab/errors.hpp"

namespace flowlab {

void fsync_path(const std::string& path) {
  // O_RDONLY is enough: fsync flushes the file's data and metadata whatever the descriptor's access mode.
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw Error(fmt::format("cannot open {} to sync it: {}", path, std::strerror(errno)));
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(fmt::format("cannot sync {}: {}", path, std::strerror(err)));
  }
  ::close(fd);
}

void durable_rename(const std::string& tmp, const std::string& final_path) {
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), final_path.c_str()) != 0)
    throw Error(fmt::format("cannot rename {} to {}: {}", tmp, final_path, std::strerror(errno)));
  const std::filesystem::path dir = std::filesystem::path(final_path).parent_path();
  fsync_path(dir.empty() ? std::string(".") : dir.string());
}

WriteError::WriteError(const std::string& path, int err, const std::string& doing)
    : Error(fmt::format("{} ({}) {} {}", std::strerror(err), errno_name(err), doing, path)), path_(path), err_(err) {}

WriteError::~WriteError() = default;

bool WriteError::disk_full_or_failing() const {
  return err_ == ENOSPC || err_ == EDQUOT || err_ == EFBIG || err_ == EIO || err_ == EROFS;
}

std::string errno_name(int err) {
  switch (err) {
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EFBIG: return "EFBIG";
    case EIO: return "EIO";
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EEXIST: return "EEXIST";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return fmt::format("errno {}", err);
  }
}

namespace {

/// The errno FLOWLAB_TEST_FAIL_WRITE=SUFFIX:ERRNO[:N] asks for on this write of `path`; 0 for none.
int injected_write_error(const std::string& path) {
  const char* spec = std::getenv("FLOWLAB_TEST_FAIL_WRITE");
  if (!spec || !*spec) return 0;
  const std::string s = spec;
  const auto c1 = s.find(':');
  if (c1 == std::string::npos || c1 == 0) return 0;
  const std::string suffix = s.substr(0, c1);
  if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) return 0;
  const auto c2 = s.find(':', c1 + 1);
  const std::string e = s.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  static std::atomic<long> matched{0};  // this process's writes of matching paths so far
  if (c2 != std::string::npos && matched++ < std::atol(s.c_str() + c2 + 1)) return 0;
  for (int err : {ENOSPC, EDQUOT, EFBIG, EIO, EROFS, EACCES})
    if (e == errno_name(err)) return err;
  const int n = std::atoi(e.c_str());
  return n > 0 ? n : ENOSPC;
}

/// Writes all of [data, data + size) to fd; returns 0 or the errno.
int write_all(int fd, const char* data, size_t size, int inject) {
  size_t done = 0;
  const size_t stop_at = inject ? size / 2 : size;
  while (done < stop_at) {
    const ssize_t n = ::write(fd, data + done, std::min<size_t>(stop_at - done, size_t(1) << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // write() of regular files never returns 0 for a non-empty buffer
    done += size_t(n);
  }
  return inject;
}

}  // namespace

void write_file(const std::string& path, const char* data, size_t size, const std::string& tmp_name) {
  const std::string tmp = tmp_name.empty() ? path + ".tmp" : tmp_name;
  int fd;
  do fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    std::remove(tmp.c_str());  // a stale empty directory in the way goes, so that a second try can succeed
    throw WriteError(tmp, err, "creating");
  }
  int err = write_all(fd, data, size, injected_write_error(path));
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err && errno != EINTR) err = errno;  // NFS reports some write errors at close
  if (err) {
    std::remove(tmp.c_str());
    throw WriteError(path, err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    throw WriteError(path, err, fmt::format("renaming {} to", tmp));
  }
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const std::string d = dir.empty() ? std::string(".") : dir.string();
  do fd = ::open(d.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw WriteError(d, errno, "opening the directory");
  err = ::fsync(fd) != 0 ? errno : 0;
  ::close(fd);
  if (err && err != EINVAL) throw WriteError(path, err, "syncing the directory of");  // EINVAL: no dir fsync there
}

namespace {

std::string read_fd(int fd) {
  std::string text;
  char buf[256];
  if (::lseek(fd, 0, SEEK_SET) != 0) return text;
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < 4096;) text.append(buf, size_t(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

OutputLock::OutputLock(const std::string& output, const std::string& what) : path_(output + ".lock") {
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    int fd;
    do fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) throw Error(fmt::format("cannot create the lock file {}: {}", path_, std::strerror(errno)));
    int rc;
    do rc = ::flock(fd, LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int err = errno;
      std::string holder = read_fd(fd);
      // The holder writes its line just after taking the lock: give it a moment (up to 2 s) to appear.
      for (int wait = 0; err == EWOULDBLOCK && holder.empty() && wait < 200; ++wait) {
        ::usleep(10000);
        holder = read_fd(fd);
      }
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw Error(fmt::format("{} is in use by another flowlab process ({}): wait for it to end, or choose another "
                                "--out",
                                output, holder.empty() ? "its lock file names none" : holder));
      throw Error(fmt::format("cannot lock {}: {} (flowlab needs a filesystem with file locks for its outputs)", path_,
                              std::strerror(err)));
    }
    // Ours only if the file is still the one at the path: a holder that ended removed it after we opened it.
    struct stat held {
    }, at_path{};
    if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &at_path) == 0 && held.st_ino == at_path.st_ino &&
        held.st_dev == at_path.st_dev) {
      fd_ = fd;
    } else {
      ::close(fd);
    }
  }
  if (fd_ < 0) throw Error(fmt::format("cannot lock {}: it kept being replaced", path_));
  char host[256] = "?";
  ::gethostname(host, sizeof host - 1);
  char since[32] = "?";
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  if (::gmtime_r(&now, &utc)) std::strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &utc);
  const std::string text = fmt::format("pid {} on host {} since {} ({})\n", ::getpid(), host, since, what);
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size())) {
    const int err = errno;
    ::close(fd_);
    throw Error(fmt::format("cannot write the lock file {}: {}", path_, std::strerror(err)));
  }
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while the lock is held: see the class comment
  ::close(fd_);
}

}  // namespace flowlab
