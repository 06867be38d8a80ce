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

std::vector<int64_t> StoredImages::event_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

Batch StoredImages::take(const Tensor& indices, const at::TensorOptions& o) const {
  const Tensor i = indices.to(at::kCPU, at::kLong);
  return {(images_.index_select(0, i).to(o.dtype()) / (max_value_ / 2) - 1).to(o.device()),
          labels_.index_select(0, i).to(o.device()), Tensor()};
}

Batch StoredImages::sample(int64_t n, const at::TensorOptions& o) const {
  return take(at::randint(size(), {n}, at::kLong), o);
}

void StoredImages::set_images(Tensor images, Tensor labels, int64_t num_classes, double max_value) {
  images_ = std::move(images);
  labels_ = std::move(labels);
  num_classes_ = num_classes;
  max_value_ = max_value;
}

Batch Dataset::reference(int64_t n, const at::TensorOptions& options) const { return sample(n, options); }
std::string Dataset::reference_source() const { return "independent stream"; }

}  // namespace flowlab
