// Gaussian matched to the data's scale: x0 ~ N(0, s^2 I), with s the data's standard deviation, estimated once
// by fit() (over all elements, or per feature). log p(x) = sum_i [-x_i^2 / (2 s_i^2) - log s_i] - (D / 2) log(2 pi).
#include <fmt/format.h>

#include <cmath>

#include "flowlab/noise.hpp"

namespace {

/// Options of noise/matched.
struct MatchedOptions {
  bool per_feature;  ///< one std per feature (over the batch) instead of one overall
  explicit MatchedOptions(const flowlab::Params& p) : per_feature(p.boolean("per_feature")) {}
};

class MatchedNoise final : public flowlab::Noise {
 public:
  explicit MatchedNoise(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}
  void fit(const flowlab::Tensor& data) override {
    if (data.dim() < 1 || data.size(0) < 2)
      throw flowlab::Error(fmt::format("{}: fit() needs at least 2 samples to estimate a standard deviation", owner_));
    std_ = opt_.per_feature ? data.std(0).unsqueeze(0) : data.std();
  }
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    if (!std_.defined())
      throw flowlab::Error(fmt::format("{}: sample() before fit(): the data's std is not estimated", owner_));
    return at::randn(shape, o) * std_.to(o.device(), o.dtype());
  }
  flowlab::Tensor log_prob(const flowlab::Tensor& x) const override {
    if (!std_.defined())
      throw flowlab::Error(fmt::format("{}: log_prob() before fit(): the data's std is not estimated", owner_));
    const flowlab::Tensor s = std_.to(x.device(), at::kDouble).expand_as(x.select(0, 0).unsqueeze(0));
    const flowlab::Tensor z = (x.to(at::kDouble) / s).flatten(1);
    const double d = double(z.size(1));
    return -0.5 * z.pow(2).sum(1) - s.log().sum() - 0.5 * d * std::log(2 * M_PI);
  }

 private:
  MatchedOptions opt_;
  std::string owner_;
  flowlab::Tensor std_;
};

}  // namespace

FLOWLAB_PLUGIN(noise, matched, MatchedNoise, "1.0.0", "N(0, s^2 I) with s the data's std, estimated once",
               FLOWLAB_PARAM(per_feature, bool, "false", "estimate one std per feature instead of one overall"))
