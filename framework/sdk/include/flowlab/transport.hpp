// Optimal transport between two uniformly weighted point sets, for the w2 metric and the OT couplings: exact
// (LEMON's network simplex, the algorithm of POT's ot.emd) and entropic (Sinkhorn in the log domain).
#pragma once

#include <string>

#include "flowlab/export.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// An exact plan in sparse form: mass[k] moves from point rows[k] to point cols[k] (a basic solution has at most
/// N + M - 1 entries). Rows sum to 1/N, columns to 1/M.
struct SparsePlan {
  ///@{
  Tensor rows, cols;  ///< int64 [K]
  ///@}
  Tensor mass;      ///< float64 [K]
  double cost = 0;  ///< sum_k mass[k] cost[rows[k], cols[k]] under the float64 costs, summed in long double
};

/// Exact optimal transport for the cost matrix [N, M] (any floating type and device; solved in float64 on the CPU).
/// LEMON needs integer data: supplies are M/g and N/g (g = gcd(N, M)), costs are rounded to int64 after scaling the
/// largest to 2^60 / (N + M + 1), so the plan is optimal for costs within max(cost) (N + M + 1) / 2^60 of the given
/// ones. `owner` ("metric/w2") starts every error message.
FLOWLAB_API SparsePlan exact_transport(const Tensor& cost, const std::string& owner);

/// For a square cost [N, N]: perm [N] (int64) with perm[i] the column assigned to row i in a minimum-cost
/// assignment, by shortest augmenting paths (Jonker-Volgenant; the search as SciPy's linear_sum_assignment), solved
/// in float32 and certified in float64 (rows the float64 duals do not certify are re-paired in float64): optimal
/// for the float64 costs.
/// The same problem as exact_transport on N uniform points (whose plan is a permutation / N), solved faster.
FLOWLAB_API Tensor optimal_assignment(const Tensor& cost, const std::string& owner);

/// Entropic transport: the plan P_ij = exp((f_i + g_j - cost_ij) / epsilon) with row sums 1/N and column sums 1/M,
/// by Sinkhorn's alternating updates of the potentials f, g in the log domain (stable for small epsilon). Stops
/// when the largest row-sum error is below `tol` / N (column sums are exact after each update) or after
/// `max_iter` iterations (then throws Error, naming `owner`, epsilon and the error reached).
struct DensePlan {
  Tensor plan;             ///< float64 [N, M] on the CPU
  double cost = 0;         ///< sum_ij P_ij cost_ij
  int64_t iterations = 0;  ///< Sinkhorn iterations run
};
FLOWLAB_API DensePlan sinkhorn_transport(const Tensor& cost, double epsilon, double tol, int64_t max_iter,
                                         const std::string& owner);

}  // namespace flowlab
