// Negative log-likelihood of held-out data under the trained flow, by the instantaneous change of variables
// (Chen et al. 2018, Theorem 1; FFJORD, Grathwohl et al. 2019, eqs. 4 and 7; see flowlab/likelihood.hpp):
//   log p_1(x_1) = log p_0(x_0) - int_0^1 div v(x_t, t) dt,
// integrated backward from the data by the solver `solver`, with the exact divergence up to exact_max_dim
// dimensions and Hutchinson's estimator above (probes: Rademacher or Gaussian).
// Units: nats per sample for continuous data. For discrete data (8-bit images; Dataset::quantization_step() = the
// bin width Delta in model units) the data are dequantized, y = x + Delta u with u ~ U[0, 1)^D (Theis et al. 2016;
// Ho et al. 2019, Flow++, eq. 2: E_u[-log p(y)] - D log Delta bounds -log P(x) from above), and the value is in bits
// per dimension: (E[-log p(y)] - D log Delta) / (D log 2).
// The model's density is the data's only when it was trained with the independent coupling; the engine says so in
// the results otherwise.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>

#include "flowlab/likelihood.hpp"
#include "flowlab/metric.hpp"

namespace {

/// Options of metric/nll.
struct NllOptions {
  std::string solver;     ///< the solver of the backward integration
  double rtol, atol;      ///< its tolerances (adaptive solvers)
  int64_t steps;          ///< its steps (fixed-step solvers)
  int64_t exact_max_dim;  ///< exact divergence up to this many dimensions, Hutchinson above
  int64_t probes;         ///< Hutchinson probes per sample
  std::string probe;      ///< rademacher or gaussian
  int64_t samples;        ///< reference samples used (0: all)
  int64_t seed;           ///< seeds the probes and the dequantization noise
  explicit NllOptions(const flowlab::Params& p)
      : solver(p.str("solver")),
        rtol(p.real("rtol")),
        atol(p.real("atol")),
        steps(p.integer("steps")),
        exact_max_dim(p.integer("exact_max_dim")),
        probes(p.integer("probes")),
        probe(p.str("probe")),
        samples(p.integer("samples")),
        seed(p.integer("seed")) {
    if (probes < 1) throw flowlab::ParamError(p.owner(), "probes", fmt::format("must be >= 1, got {}", probes));
    if (exact_max_dim < 0)
      throw flowlab::ParamError(p.owner(), "exact_max_dim", fmt::format("must be >= 0, got {}", exact_max_dim));
    if (samples < 0) throw flowlab::ParamError(p.owner(), "samples", fmt::format("must be >= 0, got {}", samples));
  }
};

class NllMetric final : public flowlab::ModelMetric {
 public:
  explicit NllMetric(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}

  double compute_model(const flowlab::ModelAccess& m, const flowlab::Tensor& reference) const override {
    auto solver = m.make_solver(opt_.solver, flowlab::Params());
    flowlab::Params sp;
    if (solver->adaptive()) sp.set("rtol", opt_.rtol).set("atol", opt_.atol);
    else sp.set("steps", opt_.steps);
    solver = m.make_solver(opt_.solver, sp);
    const int64_t n = opt_.samples > 0 ? std::min(opt_.samples, reference.size(0)) : reference.size(0);
    flowlab::Tensor x = reference.narrow(0, 0, n);
    const int64_t d = x.numel() / n;
    at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(opt_.seed));
    const double delta = m.quantization_step;
    if (delta > 0) x = x + at::rand(x.sizes(), gen, x.options().device(at::kCPU)).to(x.device()) * delta;
    flowlab::LikelihoodOptions lo;
    lo.exact = d <= opt_.exact_max_dim;
    lo.probes = opt_.probes;
    lo.probe = opt_.probe;
    lo.generator = gen;
    if (!m.noise_log_prob) throw flowlab::Error(fmt::format("{}: the trial's noise has no log density", owner_));
    const flowlab::LikelihoodResult r = flowlab::log_likelihood(*solver, m.field, x, m.noise_log_prob, lo);
    const double nll = -r.log_p.mean().item<double>();
    if (!std::isfinite(nll))
      throw flowlab::Error(fmt::format("{}: the log-likelihood is not finite ({}): the backward solve left the noise's "
                                       "support or diverged",
                                       owner_, -nll));
    return delta > 0 ? (nll - double(d) * std::log(delta)) / (double(d) * std::log(2.0)) : nll;
  }

  std::string describe(const flowlab::ModelAccess& m) const override {
    const std::string unit = m.quantization_step > 0
                                 ? fmt::format("bits/dim, uniform dequantization (bin {:g})", m.quantization_step)
                                 : std::string("nats per sample");
    return fmt::format("{}; {} backward, exact divergence up to {} dimensions, else Hutchinson ({} {} probe{})", unit,
                       opt_.solver, opt_.exact_max_dim, opt_.probes, opt_.probe, opt_.probes == 1 ? "" : "s");
  }

 private:
  NllOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(metric, nll, NllMetric, "1.0.0", "negative log-likelihood of held-out data (nats, or bits/dim)",
               FLOWLAB_PARAM(solver, string, "dopri5", "solver of the backward integration")
                   FLOWLAB_PARAM(rtol, float, "1e-5", "relative tolerance (adaptive solvers)")
                       FLOWLAB_PARAM(atol, float, "1e-5", "absolute tolerance (adaptive solvers)")
                           FLOWLAB_PARAM(steps, int, "100", "steps (fixed-step solvers)")
                               FLOWLAB_PARAM(exact_max_dim, int, "16",
                                             "exact divergence up to this many dimensions, Hutchinson above")
                                   FLOWLAB_PARAM(probes, int, "1", "Hutchinson probes per sample")
                                       FLOWLAB_PARAM(probe, enum(rademacher | gaussian), "rademacher",
                                                     "Hutchinson probe distribution")
                                           FLOWLAB_PARAM(samples, int, "0", "reference samples used (0: all)")
                                               FLOWLAB_PARAM(seed, int, "0",
                                                             "seed of the probes and the dequantization noise"))
