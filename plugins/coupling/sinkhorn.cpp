// Entropic minibatch OT: the Sinkhorn plan of each batch (log domain, flowlab::sinkhorn_transport) on the squared
// Euclidean cost divided by its largest entry (so epsilon is relative, as TorchCFM's normalize_cost), then B pairs
// drawn from the plan with replacement. As epsilon -> 0 the plan tends to the exact OT plan; large epsilon tends to
// the independent coupling.
#include <fmt/format.h>

#include "flowlab/coupling.hpp"
#include "flowlab/transport.hpp"

namespace {

/// Options of coupling/sinkhorn.
struct SinkhornOptions {
  double epsilon;    ///< entropic regularisation, relative to the largest cost
  int64_t max_iter;  ///< Sinkhorn iterations before giving up
  double tol;        ///< largest row-sum error, relative to 1/B
  explicit SinkhornOptions(const flowlab::Params& p)
      : epsilon(p.real("epsilon")), max_iter(p.integer("max_iter")), tol(p.real("tol")) {
    if (!(epsilon > 0)) throw flowlab::ParamError(p.owner(), "epsilon", fmt::format("must be > 0, got {}", epsilon));
    if (max_iter < 1) throw flowlab::ParamError(p.owner(), "max_iter", fmt::format("must be >= 1, got {}", max_iter));
    if (!(tol > 0)) throw flowlab::ParamError(p.owner(), "tol", fmt::format("must be > 0, got {}", tol));
  }
};

class SinkhornCoupling final : public flowlab::Coupling {
 public:
  explicit SinkhornCoupling(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}
  flowlab::Pairing pair(const flowlab::Tensor& x0, const flowlab::Tensor& x1) const override {
    at::Tensor cost = flowlab::squared_euclidean_cost(x0, x1);
    const double top = cost.max().item<double>();
    if (top > 0) cost = cost / top;
    const auto plan = flowlab::sinkhorn_transport(cost, opt_.epsilon, opt_.tol, opt_.max_iter, owner_);
    return flowlab::sample_pairs(plan.plan, x0.size(0));
  }

 private:
  SinkhornOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(coupling, sinkhorn, SinkhornCoupling, "1.0.0",
               "entropic OT plan per batch (log-domain Sinkhorn), pairs sampled from it",
               FLOWLAB_PARAM(epsilon, float, "0.05",
                             "entropic regularisation, relative to the largest squared distance")
                   FLOWLAB_PARAM(max_iter, int, "2000", "iterations before giving up")
                       FLOWLAB_PARAM(tol, float, "1e-6", "largest row-sum error of the plan, relative to 1/B"))
