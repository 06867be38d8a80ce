// Durable replacement of files: fsync the new file, rename it, fsync the directory (see files.hpp).
#include "flowlab/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
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
      const std::string holder = read_fd(fd);
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw Error(fmt::format("{} is in use by another flowlab process ({}): wait for it to end, or choose another "
                                "--out", output, holder.empty() ? "its lock file names none" : holder));
      throw Error(fmt::format("cannot lock {}: {} (flowlab needs a filesystem with file locks for its outputs)", path_,
                              std::strerror(err)));
    }
    // Ours only if the file is still the one at the path: a holder that ended removed it after we opened it.
    struct stat held {}, at_path {};
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
