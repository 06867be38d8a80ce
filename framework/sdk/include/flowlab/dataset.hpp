// Datasets: samples x1 of the target (or base) distribution, with optional labels and continuous attributes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// A batch from a dataset. `label` [B] (int64) and `attr` [B, A] are undefined when the set has none.
struct Batch {
  ///@{
  Tensor x, label, attr;  ///< samples [B, ...], labels [B] (int64) and attributes [B, A]
  ///@}
};

/// `cpu` on o's device: on a GPU through pinned memory with a non-blocking copy (the copy overlaps the host's work;
/// the caching allocator keeps the pinned block until the copy is done); elsewhere a plain .to().
FLOWLAB_API Tensor to_device(const Tensor& cpu, const at::TensorOptions& o);

/// A source of samples x1 of the target (or base) distribution, with optional labels and continuous
/// attributes: the `dataset` plugin kind. Finite sets also index their training examples (size(), take()) and
/// hold out reference data for the metrics (reference()).
class FLOWLAB_API Dataset : public Plugin {
 public:
  /// Shape of one sample, without the batch dimension ([2] for 2D toys, [1, 28, 28] for images).
  virtual std::vector<int64_t> event_shape() const = 0;
  /// n training samples, drawn with torch's default generator. A finite dataset draws only from its training part
  /// (never from what reference() returns).
  virtual Batch sample(int64_t n, const at::TensorOptions& options) const = 0;
  /// Number of classes for class conditioning; 0 when the set has no labels.
  virtual int64_t num_classes() const { return 0; }
  /// Width of the continuous attribute vector; 0 when there is none.
  virtual int64_t attr_dim() const { return 0; }
  /// Number of training examples of a finite dataset (images, tables); 0 for a generative one (2D toys). The
  /// held-out examples are not counted: they are reached only through reference().
  virtual int64_t size() const { return 0; }
  /// The training examples at `indices` [K] (int64, each in [0, size())), in order. Finite datasets only.
  virtual Batch take(const Tensor& indices, const at::TensorOptions& options) const;
  /// n reference samples the model never trains on, for metrics. Finite datasets: drawn without replacement from
  /// the held-out split (all of it, in a random order, when n exceeds its size; so the result may have fewer than
  /// n rows). Generated datasets (size() == 0): n fresh samples from sample(); the caller seeds torch's generator
  /// with a seed of its own, so the stream is independent of training. Uses torch's default generator.
  virtual Batch reference(int64_t n, const at::TensorOptions& options) const;
  /// What reference() draws from, for the results file: "independent stream" for generated datasets; for finite
  /// ones what the plugin says, e.g. "held-out split (seeded 20%, 360 of 1797)" or "test set (10000)". The default
  /// for a finite dataset that does not override reference() is "none".
  virtual std::string reference_source() const;
  /// The width, in the units samples are returned in, of the bins of a dataset of discrete values (8-bit images:
  /// 2 / max_value on [-1, 1]); 0 for continuous data. Likelihoods dequantize by it and report bits per dimension.
  virtual double quantization_step() const { return 0.0; }
};

namespace kinds {
/// The base class of the `dataset` plugin kind (FLOWLAB_PLUGIN(dataset, ...)).
using dataset = Dataset;
}  // namespace kinds

/// The fraction of a finite dataset's examples that holdout_split() holds out when the data has no test set of its
/// own (digits, tabular): 20%.
inline constexpr double kHoldoutFraction = 0.2;

/// A fixed, seeded split of n examples into training and held-out indices (each [K] int64, ascending), the same
/// on every machine and every run: ceil(fraction * n) examples are held out (at most n - 1, so at least one
/// example trains), chosen by a Fisher-Yates shuffle of 0..n-1 driven by SplitMix64 from `seed`. It does not touch
/// torch's generators. The default seed 0x666c6f776c6162 is "flowlab" in ASCII.
FLOWLAB_API std::pair<Tensor, Tensor> holdout_split(int64_t n, double fraction = kHoldoutFraction,
                                                    uint64_t seed = 0x666c6f776c6162ULL);

/// Base for datasets of stored 8-bit images with labels (digits, Fashion-MNIST): the subclass loads the pixels once
/// with set_images(); take(), sample() and reference() return them scaled to [-1, 1] as pixel / (max_value / 2) - 1.
/// size() and take() index the training images; reference() draws from the held-out ones.
class FLOWLAB_API StoredImages : public Dataset {
 public:
  std::vector<int64_t> event_shape() const override;
  int64_t num_classes() const override { return num_classes_; }
  int64_t size() const override { return images_.defined() ? images_.size(0) : 0; }
  Batch take(const Tensor& indices, const at::TensorOptions& options) const override;
  /// n training examples drawn uniformly with replacement (torch's default generator).
  Batch sample(int64_t n, const at::TensorOptions& options) const override;
  /// min(n, held-out size) held-out examples, without replacement, in a random order (torch's default generator).
  Batch reference(int64_t n, const at::TensorOptions& options) const override;
  std::string reference_source() const override { return reference_source_; }
  double quantization_step() const override { return 2.0 / max_value_; }
  /// Number of held-out images.
  int64_t heldout_size() const { return heldout_images_.defined() ? heldout_images_.size(0) : 0; }

 protected:
  /// Training images [N, C, H, W] uint8 and labels [N] int64, held-out images [M, C, H, W] and labels [M], pixel
  /// values in [0, max_value]; `source` is what reference_source() returns.
  void set_images(Tensor images, Tensor labels, Tensor heldout_images, Tensor heldout_labels, int64_t num_classes,
                  double max_value, std::string source);

 private:
  Batch scaled(const Tensor& images, const Tensor& labels, const Tensor& indices, const at::TensorOptions& o) const;

  Tensor images_, labels_, heldout_images_, heldout_labels_;
  int64_t num_classes_ = 0;
  double max_value_ = 255;
  std::string reference_source_;
};

/// A batch of 2D points with their component label [B] and, as the continuous attribute, the radius |x| [B, 1].
inline Batch planar_batch(const Tensor& x, const Tensor& label) { return {x, label, x.norm(2, {1}, true)}; }

/// The bytes of a data file, gunzipped when the name ends in .gz. A missing or unreadable file throws
/// flowlab::Error naming the plugin (`owner`), the file and where it comes from (`provenance`, e.g. "the Debian
/// package dataset-fashion-mnist (scripts/setup.sh installs it)").
FLOWLAB_API std::string read_data_file(const std::string& owner, const std::string& path,
                                       const std::string& provenance);

}  // namespace flowlab
