// Log-likelihoods of data under a flow model by the instantaneous change of variables (Chen et al. 2018, "Neural
// ODEs", Theorem 1; Grathwohl et al. 2019, FFJORD, eqs. 4 and 7; Meta flow_matching's ODESolver.compute_likelihood):
//   d/dt log p_t(x_t) = -div v(x_t, t),  so  log p_1(x_1) = log p_0(x_0) - int_0^1 div v(x_t, t) dt,
// where x_0 is x_1 carried back to t = 0 along dx/dt = v. The divergence is exact (one vector-Jacobian product per
// dimension) or Hutchinson's estimate E_eps[eps^T (dv/dx) eps] (Hutchinson 1989; FFJORD eq. 7) with Rademacher or
// Gaussian probes eps, drawn once per sample and kept for the whole solve so that an adaptive solver sees a smooth
// field.
#pragma once

#include <functional>
#include <string>

#include "flowlab/solver.hpp"

namespace flowlab {

/// How the divergence along the flow is computed for a log-likelihood.
struct LikelihoodOptions {
  bool exact = true;                 ///< exact divergence; false: Hutchinson's estimator
  int64_t probes = 1;                ///< Hutchinson probes per sample (averaged)
  std::string probe = "rademacher";  ///< rademacher or gaussian
  at::Generator generator;           ///< draws the probes (CPU generator); undefined: torch's default one
};

/// Per-sample log-likelihoods and what they were computed from.
struct LikelihoodResult {
  Tensor log_p;       ///< log p_1(x_1) [B], nats, float64
  Tensor log_p0;      ///< log p_0(x_0) [B], the base density at the backward endpoint
  Tensor divergence;  ///< int_0^1 div v(x_t, t) dt [B]
  Tensor x0;          ///< x_1 carried back to t = 0
  int64_t nfe = 0;    ///< evaluations of the augmented field (each one network call plus its vector-Jacobian products)
  int64_t vjps = 0;   ///< vector-Jacobian products (dimension or probes per evaluation)
};

/// Integrates the augmented state [x, a] with da/dt = div v backward from t = 1 to 0 (as s = 1 - t from 0 to 1, so
/// any solver runs it) and adds log p_0(x_0). `log_p0` maps x0 [B, ...] to [B]. The field is evaluated with
/// gradients on (whatever the caller's grad mode) and must not be under InferenceMode. Throws flowlab::Error for an
/// unknown probe or probes < 1, and SolverError when the solve fails.
FLOWLAB_API LikelihoodResult log_likelihood(const Solver& solver, const VelocityField& v, const Tensor& x1,
                                            const std::function<Tensor(const Tensor&)>& log_p0,
                                            const LikelihoodOptions& options = LikelihoodOptions());

/// The divergence of v at (x, t) [B]: exact (probes empty) or eps^T (dv/dx) eps averaged over probes [K, B, ...].
FLOWLAB_API Tensor divergence(const VelocityField& v, const Tensor& x, const Tensor& t, const Tensor& probes,
                              Tensor* value = nullptr);

}  // namespace flowlab
