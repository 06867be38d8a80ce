// Durable replacement of files: fsync the new file, rename it, fsync the directory (see files.hpp).
#include "flowlab/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

}  // namespace flowlab
