// Datasets: samples x1 of the target (or base) distribution, with optional labels and continuous attributes.
#pragma once

#include <string>
#include <vector>

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// A batch from a dataset. `label` [B] (int64) and `attr` [B, A] are undefined when the set has none.
struct Batch {
  Tensor x, label, attr;
};

class FLOWLAB_API Dataset : public Plugin {
 public:
  /// Shape of one sample, without the batch dimension ([2] for 2D toys, [1, 28, 28] for images).
  virtual std::vector<int64_t> event_shape() const = 0;
  /// n samples, drawn with torch's default generator.
  virtual Batch sample(int64_t n, const at::TensorOptions& options) const = 0;
  /// Number of classes for class conditioning; 0 when the set has no labels.
  virtual int64_t num_classes() const { return 0; }
  /// Width of the continuous attribute vector; 0 when there is none.
  virtual int64_t attr_dim() const { return 0; }
  /// Number of stored examples of a finite dataset (images, tables); 0 for a generative one (2D toys).
  virtual int64_t size() const { return 0; }
  /// The stored examples at `indices` [K] (int64), in order. Finite datasets only.
  virtual Batch take(const Tensor& indices, const at::TensorOptions& options) const;
  /// n reference samples the model never trains on, for metrics. Finite datasets: drawn without replacement from
  /// the held-out split (all of it, in a random order, when n exceeds its size; so the result may have fewer than
  /// n rows). Generated datasets (size() == 0): n fresh samples from sample(); the caller seeds torch's generator
  /// with a seed of its own, so the stream is independent of training. Uses torch's default generator.
  virtual Batch reference(int64_t n, const at::TensorOptions& options) const;
  /// What reference() draws from, for the results file.
  virtual std::string reference_source() const;
};

namespace kinds {
using dataset = Dataset;
}

/// Base for datasets of stored 8-bit images with labels (digits, Fashion-MNIST): the subclass loads the pixels once
/// with set_images(); take() and sample() return them scaled to [-1, 1] as pixel / (max_value / 2) - 1.
class FLOWLAB_API StoredImages : public Dataset {
 public:
  std::vector<int64_t> event_shape() const override;
  int64_t num_classes() const override { return num_classes_; }
  int64_t size() const override { return images_.defined() ? images_.size(0) : 0; }
  Batch take(const Tensor& indices, const at::TensorOptions& options) const override;
  /// n examples drawn uniformly with replacement (torch's default generator).
  Batch sample(int64_t n, const at::TensorOptions& options) const override;

 protected:
  /// images [N, C, H, W] uint8, labels [N] int64, pixel values in [0, max_value].
  void set_images(Tensor images, Tensor labels, int64_t num_classes, double max_value);

 private:
  Tensor images_, labels_;
  int64_t num_classes_ = 0;
  double max_value_ = 255;
};

/// A batch of 2D points with their component label [B] and, as the continuous attribute, the radius |x| [B, 1].
inline Batch planar_batch(const Tensor& x, const Tensor& label) { return {x, label, x.norm(2, {1}, true)}; }

/// The bytes of a data file, gunzipped when the name ends in .gz. A missing or unreadable file throws
/// flowlab::Error naming the plugin (`owner`), the file and where it comes from (`provenance`, e.g. "the Debian
/// package dataset-fashion-mnist (scripts/setup.sh installs it)").
FLOWLAB_API std::string read_data_file(const std::string& owner, const std::string& path, const std::string& provenance);

}  // namespace flowlab
