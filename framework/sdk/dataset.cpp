// Reading data files for dataset plugins (gzip through zlib), with errors that say where a file comes from.
#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
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
    throw Error(
        fmt::format("{}: '{}' is not a valid gzip file ({}); reinstall it from {}", owner, path, msg, provenance));
  return out;
}

Batch Dataset::reference(int64_t n, const at::TensorOptions& options) const {
  if (size() == 0) return sample(n, options);
  throw Error("this finite dataset declares no held-out split: it does not override Dataset::reference()");
}

std::string Dataset::reference_source() const { return size() == 0 ? "independent stream" : "none"; }

std::pair<Tensor, Tensor> holdout_split(int64_t n, double fraction, uint64_t seed) {
  if (n < 0 || !(fraction >= 0 && fraction < 1))
    throw Error(
        fmt::format("holdout_split: needs n >= 0 and 0 <= fraction < 1, got n = {}, fraction = {}", n, fraction));
  const int64_t held =
      n < 2 ? 0 : std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(fraction * double(n) - 1e-9)));
  // SplitMix64 (Steele, Lea & Flood 2014) drives a Fisher-Yates shuffle; j = floor(r * (i + 1) / 2^64).
  uint64_t state = seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(next()) * uint64_t(i + 1)) >> 64);
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  std::vector<int64_t> heldout(order.begin(), order.begin() + held), train(order.begin() + held, order.end());
  std::sort(heldout.begin(), heldout.end());
  std::sort(train.begin(), train.end());
  return {at::tensor(train, at::kLong), at::tensor(heldout, at::kLong)};
}

std::vector<int64_t> StoredImages::event_shape() const { return {images_.size(1), images_.size(2), images_.size(3)}; }

Tensor to_device(const Tensor& cpu, const at::TensorOptions& o) {
  if (!o.device().is_cuda() || !cpu.device().is_cpu()) return cpu.to(o.device());
  return cpu.pin_memory().to(o.device(), cpu.scalar_type(), /*non_blocking=*/true);
}

Batch StoredImages::scaled(const Tensor& images, const Tensor& labels, const Tensor& indices,
                           const at::TensorOptions& o) const {
  const Tensor i = indices.to(at::kCPU, at::kLong);
  return {to_device(images.index_select(0, i).to(o.dtype()) / (max_value_ / 2) - 1, o),
          to_device(labels.index_select(0, i), o), Tensor()};
}

Batch StoredImages::take(const Tensor& indices, const at::TensorOptions& o) const {
  return scaled(images_, labels_, indices, o);
}

Batch StoredImages::sample(int64_t n, const at::TensorOptions& o) const {
  return take(at::randint(size(), {n}, at::kLong), o);
}

Batch StoredImages::reference(int64_t n, const at::TensorOptions& o) const {
  if (heldout_size() == 0) throw Error("this image dataset has no held-out images to draw references from");
  if (n < 0) throw Error(fmt::format("reference: n must be >= 0, got {}", n));
  return scaled(heldout_images_, heldout_labels_, at::randperm(heldout_size(), at::kLong).slice(0, 0, n), o);
}

void StoredImages::set_images(Tensor images, Tensor labels, Tensor heldout_images, Tensor heldout_labels,
                              int64_t num_classes, double max_value, std::string source) {
  images_ = std::move(images);
  labels_ = std::move(labels);
  heldout_images_ = std::move(heldout_images);
  heldout_labels_ = std::move(heldout_labels);
  num_classes_ = num_classes;
  max_value_ = max_value;
  reference_source_ = std::move(source);
}

}  // namespace flowlab
