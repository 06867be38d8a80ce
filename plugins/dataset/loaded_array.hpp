// Shared by the importer datasets of this directory, `image_folder` and `array` (not part of the SDK): a finite
// dataset loaded once into memory, with optional integer labels, a fixed seeded held-out split
// (flowlab::holdout_split, like digits and tabular), the layout options, and the value normalisation. No library
// beyond LibTorch.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

#include "flowlab/dataset.hpp"

namespace flowlab::importers {

/// "7.6 MiB" for a byte count.
inline std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

/// NumPy's name of a tensor type ("uint8", "float32", ...).
inline std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

/// The array `x` [N, ...] in the layout `layout` asks for: keep (as stored), channels_last (a 4-D [N, H, W, C] array
/// becomes [N, C, H, W]) or add_channel ([N, ...] becomes [N, 1, ...], e.g. [N, H, W] grayscale images). A 1-D
/// array [N] becomes [N, 1] in every layout (one value per sample).
inline Tensor apply_layout(const std::string& owner, const std::string& where, Tensor x, const std::string& layout) {
  if (x.dim() == 0) throw Error(fmt::format("{}: '{}': a 0-d array holds no samples", owner, where));
  if (layout == "channels_last") {
    if (x.dim() != 4)
      throw ParamError(owner, "layout",
                       fmt::format("is channels_last, which needs a 4-D array [N, H, W, C]; '{}' has shape [{}]", where,
                                   fmt::join(x.sizes(), ", ")));
    return x.permute({0, 3, 1, 2}).contiguous();
  }
  if (layout == "add_channel") return x.unsqueeze(1);
  if (layout != "keep")
    throw ParamError(owner, "layout", fmt::format("is '{}'; valid: keep, channels_last, add_channel", layout));
  return x.dim() == 1 ? x.unsqueeze(1) : x;
}

/// A finite dataset held in memory: samples [N, ...] stored as uint8 (images) or float32/float64, labels [N] int64
/// (or none), split once into training and held-out parts. take(), sample() and reference() return
/// (x - sub) / div + add in the caller's dtype; the subclass picks the normalisation with load().
class LoadedArray : public Dataset {
 public:
  std::vector<int64_t> event_shape() const override {
    return std::vector<int64_t>(train_.sizes().begin() + 1, train_.sizes().end());
  }
  int64_t num_classes() const override { return num_classes_; }
  int64_t size() const override { return train_.size(0); }
  Batch take(const Tensor& idx, const at::TensorOptions& o) const override {
    return rows(train_, train_labels_, idx, o);
  }
  Batch sample(int64_t n, const at::TensorOptions& o) const override {
    return take(at::randint(size(), {n}, at::kLong), o);
  }
  Batch reference(int64_t n, const at::TensorOptions& o) const override {
    if (n < 0) throw Error(fmt::format("{}: reference: n must be >= 0, got {}", owner_, n));
    return rows(heldout_, heldout_labels_, at::randperm(heldout_.size(0), at::kLong).slice(0, 0, n), o);
  }
  /// The held-out split, then what is in memory, e.g. "held-out split (seeded 20%, 2000 of 10000); in memory:
  /// 10000 x [1, 28, 28] uint8 + labels, 7.6 MiB".
  std::string reference_source() const override { return source_; }
  double quantization_step() const override { return step_; }

 protected:
  /// Loads x [N, ...] (any numeric dtype; uint8 and float32/float64 are kept, bool becomes uint8, other integers
  /// float64) and labels [N] (an integer array, or undefined for none; num_classes = max + 1 unless given), holds
  /// out the fraction `holdout` (seeded, flowlab::holdout_split), and fixes the normalisation: auto (uint8 to
  /// [-1, 1] as x / 127.5 - 1, anything else as stored), none, scale (min/max of the training part to [-1, 1]) or
  /// standardize (mean 0, std 1 over all values of the training part). `where` names the source in errors.
  void load(std::string owner, const std::string& where, Tensor x, Tensor labels, double holdout,
            const std::string& normalize, int64_t num_classes = -1) {
    owner_ = std::move(owner);
    if (!(holdout > 0 && holdout < 1))
      throw ParamError(owner_, "holdout", fmt::format("must be in (0, 1), got {}", holdout));
    if (x.scalar_type() == at::kBool) x = x.to(at::kByte);
    const bool integer = at::isIntegralType(x.scalar_type(), /*includeBool=*/false);
    if (integer && x.scalar_type() != at::kByte) x = x.to(at::kDouble);
    const int64_t n = x.size(0);
    if (n < 2)
      throw Error(
          fmt::format("{}: '{}' has {} sample(s); at least 2 are needed (a part is held out)", owner_, where, n));
    if (labels.defined()) {
      if (!at::isIntegralType(labels.scalar_type(), /*includeBool=*/true))
        throw Error(
            fmt::format("{}: '{}': labels must be integers, not {}", owner_, where, dtype_name(labels.scalar_type())));
      if (labels.dim() != 1 || labels.size(0) != n)
        throw Error(fmt::format("{}: '{}': labels have shape [{}], expected [{}] (one per sample)", owner_, where,
                                fmt::join(labels.sizes(), ", "), n));
      labels = labels.to(at::kLong);
      const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
      if (lo < 0) throw Error(fmt::format("{}: '{}': labels must be >= 0, found {}", owner_, where, lo));
      num_classes_ = num_classes >= 0 ? num_classes : hi + 1;
    }
    const auto [train_idx, heldout_idx] = holdout_split(n, holdout);
    train_ = x.index_select(0, train_idx);
    heldout_ = x.index_select(0, heldout_idx);
    if (labels.defined()) {
      train_labels_ = labels.index_select(0, train_idx);
      heldout_labels_ = labels.index_select(0, heldout_idx);
    }
    const bool bytes = x.scalar_type() == at::kByte;
    if (normalize == "auto") {
      if (bytes) div_ = 127.5, add_ = -1;
    } else if (normalize == "scale") {
      const double lo = train_.min().item<double>(), hi = train_.max().item<double>();
      sub_ = lo, div_ = std::max(hi - lo, 1e-12) / 2, add_ = -1;
    } else if (normalize == "standardize") {
      const Tensor t = train_.to(at::kDouble);
      sub_ = t.mean().item<double>(), div_ = std::max(t.std().item<double>(), 1e-12);
    } else if (normalize != "none") {
      throw ParamError(owner_, "normalize", fmt::format("is '{}'; valid: auto, none, scale, standardize", normalize));
    }
    step_ = bytes || integer ? 1 / div_ : 0.0;
    const int64_t memory = (train_.numel() + heldout_.numel()) * x.element_size() + (labels.defined() ? n * 8 : 0);
    std::vector<int64_t> event(x.sizes().begin() + 1, x.sizes().end());
    source_ = fmt::format("held-out split (seeded {:g}%, {} of {}); in memory: {} x [{}] {}{}, {}", holdout * 100,
                          heldout_.size(0), n, n, fmt::join(event, ", "), dtype_name(x.scalar_type()),
                          labels.defined() ? " + int64 labels" : "", format_bytes(memory));
  }

 private:
  Batch rows(const Tensor& x, const Tensor& labels, const Tensor& idx, const at::TensorOptions& o) const {
    const Tensor i = idx.to(at::kCPU, at::kLong);
    Tensor out = x.index_select(0, i).to(o.dtype());
    if (sub_ != 0) out = out - sub_;
    if (div_ != 1) out = out / div_;
    if (add_ != 0) out = out + add_;
    return {to_device(out, o), labels.defined() ? to_device(labels.index_select(0, i), o) : Tensor(), Tensor()};
  }

  std::string owner_, source_;
  Tensor train_, heldout_, train_labels_, heldout_labels_;
  int64_t num_classes_ = 0;
  double sub_ = 0, div_ = 1, add_ = 0, step_ = 0;
};

}  // namespace flowlab::importers
