// Feature extractors for the feature-space metrics (frechet, kid, ...): raw coordinates, a small builtin classifier
// per image dataset (trained once, cached on disk), or any TorchScript module (e.g. an exported InceptionV3).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowlab/choices.hpp"  // feature_extractor_forms()
#include "flowlab/export.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

class Registry;

class FLOWLAB_API FeatureExtractor {
 public:
  virtual ~FeatureExtractor();
  /// Features [N, F] (float32, on x's device) of a batch x [N, ...] (flattened points for raw).
  virtual at::Tensor features(const at::Tensor& x) const = 0;
  /// The same features with gradients flowing back into x (the extractor's own weights stay fixed): for training
  /// losses in feature space (objective/flow_matching's loss: feature_huber). x in one piece, on the net's device.
  virtual at::Tensor differentiable_features(const at::Tensor& x) const = 0;
  /// Stable description for the results file: "raw", "builtin:digits v1 (held-out accuracy 0.9833, 360 images)",
  /// "builtin:fashion_mnist v1 (test accuracy 0.9102, 10000 images)", "torchscript:/abs/path".
  virtual std::string describe() const = 0;
};

/// "raw" | "builtin:digits" | "builtin:fashion_mnist" | "torchscript:PATH". Anything else throws flowlab::Error listing
/// the valid forms. builtin nets are trained on first use on the dataset's training split (created through `registry`
/// with default parameters) and cached in feature_cache_dir(), keyed by the net's version and a hash of the data file;
/// later calls load the cache.
///
/// builtin nets: a small CNN (conv 3x3 + batch norm + ReLU + 2x2 max-pool, twice, then a 128-unit ReLU layer and a
/// linear classifier); the features are the 128 activations of the penultimate layer. Training runs on the CPU (so
/// the cache does not depend on the device), with torch's default generator seeded with a fixed seed and restored
/// afterwards (the caller's random stream is untouched). With the same build and thread count it is bitwise
/// reproducible; a different thread count may change float summation order and so the last digits of the accuracy.
/// The accuracy in describe() is measured on the dataset's reference() split (digits: the seeded 20% hold-out;
/// Fashion-MNIST: the 10000 test images). The cache file is builtin-<dataset>-<hash of the data files>.pt, written
/// atomically (temporary file + rename); one that is unreadable, of another net version or for other data is
/// retrained with a note on stderr; a cache directory that cannot be written is a note too (the net is used
/// anyway). Inputs are images as the dataset gives them ([N, 1, H, W] or [N, H*W], in [-1, 1]); they are converted
/// to float32 and run in chunks.
///
/// torchscript:PATH: torch::jit::load(PATH) (relative paths are made absolute), moved to `device`, in eval mode; its
/// forward runs on x (converted to float32, moved to `device`, in chunks of 256) and the output is flattened to
/// [N, F]. A missing file is an Error naming the absolute path.
FLOWLAB_API std::shared_ptr<FeatureExtractor> make_feature_extractor(const std::string& spec, const Registry& registry,
                                                                     const std::string& device = "cpu");

/// $FLOWLAB_CACHE_DIR, else $XDG_CACHE_HOME/flowlab, else $HOME/.cache/flowlab (unset or empty variables are
/// skipped; with none of them set it throws flowlab::Error).
FLOWLAB_API std::string feature_cache_dir();

/// How many builtin nets this process has trained (not loaded from the cache): evidence for tests and logs that the
/// cache was reused.
FLOWLAB_API int64_t builtin_feature_nets_trained();

}  // namespace flowlab
