// Gaussian matched to the data's scale: x0 ~ N(0, s^2 I), with s the data's standard deviation, estimated once
// by fit() (over all elements, or per feature).
#include <fmt/format.h>

#include "flowlab/noise.hpp"

namespace {

/// Options of noise/matched.
struct MatchedOptions {
  bool per_feature;  ///< one std per feature (over the batch) instead of one overall (default false)
  explicit MatchedOptions(const flowlab::Params& p) : per_feature(p.boolean("per_feature")) {}
};

class MatchedNoise final : public flowlab::Noise {
 public:
  explicit MatchedNoise(const flowlab::Params& p) : opt_(p) {}
  void fit(const flowlab::Tensor& data) override {
    if (data.dim() < 1 || data.size(0) < 2)
      throw flowlab::Error("noise/matched: fit() needs at least 2 samples to estimate a standard deviation");
    std_ = opt_.per_feature ? data.std(0).unsqueeze(0) : data.std();
  }
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    if (!std_.defined()) throw flowlab::Error("noise/matched: sample() before fit(): the data's std is not estimated");
    return at::randn(shape, o) * std_.to(o.device(), o.dtype());
  }

 private:
  MatchedOptions opt_;
  flowlab::Tensor std_;
};

}  // namespace

FLOWLAB_PLUGIN(noise, matched, MatchedNoise, "1.0.0", "N(0, s^2 I) with s the data's std, estimated once",
               FLOWLAB_PARAM(per_feature, bool, "false", "estimate one std per feature instead of one overall"))
