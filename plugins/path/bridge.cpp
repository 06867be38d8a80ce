// Gaussian (Brownian) bridge, as TorchCFM's SchrodingerBridgeConditionalFlowMatcher:
// x_t = (1 - t) x0 + t x1 + sigma sqrt(t (1 - t)) eps,  u_t = (1 - 2t) / (2 t (1 - t)) (x_t - mu_t) + x1 - x0,
// with mu_t = (1 - t) x0 + t x1. For a fixed eps, u_t = d/dt x_t.
#include <fmt/format.h>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

/// Options of path/bridge.
struct BridgeOptions {
  double sigma;  ///< bridge noise scale, >= 0; 0 gives the rectified path
  explicit BridgeOptions(const flowlab::Params& p) : sigma(p.real("sigma")) {
    if (!(sigma >= 0)) throw flowlab::ParamError(p.owner(), "sigma", fmt::format("must be >= 0, got {}", sigma));
  }
};

class BridgePath final : public flowlab::Path {
 public:
  explicit BridgePath(const flowlab::Params& p) : opt_(p) {}
  flowlab::PathSample sample(const Tensor& x0, const Tensor& x1, const Tensor& t, const Tensor& eps) const override {
    const Tensor tt = flowlab::expand_like(t, x0);
    const Tensor mu = (1 - tt) * x0 + tt * x1;
    const Tensor noise = eps.defined() ? eps : at::randn_like(x0);
    const Tensor var = tt * (1 - tt);
    flowlab::PathSample out{x0, x1, t, Tensor(), Tensor()};
    out.xt = mu + opt_.sigma * at::sqrt(var) * noise;
    // 2 t (1 - t) vanishes at the ends, where x_t - mu_t does too; the clamp only avoids 0/0.
    out.ut = (1 - 2 * tt) / (2 * var).clamp_min(1e-12) * (out.xt - mu) + x1 - x0;
    return out;
  }

 private:
  BridgeOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(path, bridge, BridgePath, "1.0.0", "Gaussian bridge with sigma_t = sigma sqrt(t(1-t)) (TorchCFM SB)",
               FLOWLAB_PARAM(sigma, float, "1.0", "bridge noise scale, >= 0"))
