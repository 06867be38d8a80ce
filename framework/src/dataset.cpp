// Reading data files for dataset plugins (gzip through zlib), with errors that say where a file comes from.
#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "flowlab/dataset.hpp"

namespace flowlab {

std::string read_data_file(const std::string& owner, const std::string& path, const std::string& provenance) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe)
    throw Error(fmt::format("{}: data file '{}' cannot be opened ({}); it comes from {}", owner, path,
                            std::strerror(errno), provenance));
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  if (!gz) {
    std::ostringstream ss;
    ss << probe.rdbuf();
    return ss.str();
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(fmt::format("{}: cannot open '{}' as gzip; it comes from {}", owner, path, provenance));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw Error(fmt::format("{}: '{}' is not a valid gzip file ({}); reinstall it from {}", owner, path, msg, provenance));
  return out;
}

}  // namespace flowlab
