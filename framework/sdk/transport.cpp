// Exact transport with LEMON's NetworkSimplex on the dense bipartite graph; entropic transport by log-domain Sinkhorn.
#include "flowlab/transport.hpp"

#include <fmt/format.h>
#include <lemon/network_simplex.h>
#include <lemon/static_graph.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>

#include "flowlab/errors.hpp"

namespace flowlab {
namespace {

/// The arcs (i, N + j) of the complete bipartite graph in source-major order, without storing them: arc k joins
/// row k / M to column k % M.
class BipartiteArcs {
 public:
  using iterator_category = std::random_access_iterator_tag;
  using value_type = std::pair<int, int>;
  using difference_type = std::ptrdiff_t;
  using pointer = const value_type*;
  using reference = value_type;
  BipartiteArcs(int64_t k, int64_t n, int64_t m) : k_(k), n_(n), m_(m) {}
  value_type operator*() const { return {static_cast<int>(k_ / m_), static_cast<int>(n_ + k_ % m_)}; }
  BipartiteArcs& operator++() { return ++k_, *this; }
  difference_type operator-(const BipartiteArcs& o) const { return static_cast<difference_type>(k_ - o.k_); }
  bool operator==(const BipartiteArcs& o) const { return k_ == o.k_; }
  bool operator!=(const BipartiteArcs& o) const { return k_ != o.k_; }

 private:
  int64_t k_, n_, m_;
};

using Graph = lemon::StaticDigraph;
using Simplex = lemon::NetworkSimplex<Graph, int, int64_t>;

/// LEMON read map: the rounded cost of arc k = round(scale * c[k]).
struct RoundedCost {
  using Key = Graph::Arc;
  using Value = int64_t;
  const Graph* graph;
  const double* cost;
  double scale;
  Value operator[](const Key& a) const { return std::llround(scale * cost[graph->id(a)]); }
};

at::Tensor checked_cost(const Tensor& cost, const std::string& owner) {
  if (!cost.defined() || cost.dim() != 2 || cost.size(0) < 1 || cost.size(1) < 1)
    throw Error(fmt::format("{}: the cost must be a matrix [N, M] with N, M >= 1", owner));
  const at::Tensor c = cost.to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(c).all().item<bool>()) throw Error(fmt::format("{}: the cost matrix holds NaN or Inf", owner));
  return c;
}

}  // namespace

SparsePlan exact_transport(const Tensor& cost_in, const std::string& owner) {
  const at::Tensor cost = checked_cost(cost_in, owner);
  const int64_t n = cost.size(0), m = cost.size(1);
  const int64_t g = std::gcd(n, m), supply = m / g, demand = n / g;
  if (n * m > std::numeric_limits<int>::max() || n * supply > std::numeric_limits<int>::max())
    throw Error(fmt::format("{}: {} x {} points are more than the solver's int arc ids and flows can hold", owner, n, m));
  const double total_mass = static_cast<double>(n) * static_cast<double>(supply);
  const double* c = cost.data_ptr<double>();
  // Shift so the smallest cost is 0 (plans do not change: every plan moves the same total mass), then scale.
  const double lo = cost.min().item<double>(), hi = cost.max().item<double>();
  std::vector<int64_t> rows, cols;
  std::vector<double> mass;
  long double total = 0;
  if (hi == lo) {  // every plan is optimal: take the north-west corner rule's
    int64_t i = 0, j = 0;
    int64_t left_i = supply, left_j = demand;
    while (i < n && j < m) {
      const int64_t f = std::min(left_i, left_j);
      rows.push_back(i), cols.push_back(j), mass.push_back(double(f) / total_mass);
      total += static_cast<long double>(f) * c[i * m + j];
      left_i -= f, left_j -= f;
      if (left_i == 0) ++i, left_i = supply;
      if (left_j == 0) ++j, left_j = demand;
    }
  } else {
    const double top = std::min(std::ldexp(1.0, 60) / static_cast<double>(n + m + 1), std::ldexp(1.0, 52));
    const double scale = std::floor(top) / (hi - lo);
    const at::Tensor shifted = cost - lo;
    Graph graph;
    graph.build(static_cast<int>(n + m), BipartiteArcs(0, n, m), BipartiteArcs(n * m, n, m));
    Simplex solver(graph);
    Graph::NodeMap<int> supplies(graph);
    for (int64_t i = 0; i < n + m; ++i)
      supplies[graph.node(static_cast<int>(i))] = i < n ? static_cast<int>(supply) : -static_cast<int>(demand);
    solver.supplyMap(supplies).costMap(RoundedCost{&graph, shifted.data_ptr<double>(), scale});
    const auto status = solver.run();
    if (status != Simplex::OPTIMAL)
      throw Error(fmt::format("{}: the network simplex ended without an optimal plan (status {})", owner,
                              static_cast<int>(status)));
    for (int64_t k = 0; k < n * m; ++k) {
      const int f = solver.flow(graph.arc(static_cast<int>(k)));
      if (f == 0) continue;
      rows.push_back(k / m), cols.push_back(k % m), mass.push_back(double(f) / total_mass);
      total += static_cast<long double>(f) * c[k];
    }
  }
  SparsePlan out;
  out.rows = at::tensor(rows, at::kLong);
  out.cols = at::tensor(cols, at::kLong);
  out.mass = at::tensor(mass, at::kDouble);
  out.cost = static_cast<double>(total / static_cast<long double>(total_mass));
  return out;
}

Tensor optimal_assignment(const Tensor& cost, const std::string& owner) {
  if (cost.dim() != 2 || cost.size(0) != cost.size(1))
    throw Error(fmt::format("{}: an assignment needs a square cost matrix, got {}", owner, fmt::join(cost.sizes(), " x ")));
  const SparsePlan plan = exact_transport(cost, owner);
  const int64_t n = cost.size(0);
  // With N == M the supplies are 1 and the plan's flows are integers, so it is a permutation.
  if (plan.rows.size(0) != n) throw Error(fmt::format("{}: the optimal plan is not a permutation", owner));
  at::Tensor perm = at::empty({n}, at::kLong);
  perm.index_put_({plan.rows}, plan.cols);
  return perm;
}

DensePlan sinkhorn_transport(const Tensor& cost_in, double epsilon, double tol, int64_t max_iter, const std::string& owner) {
  if (!(epsilon > 0)) throw Error(fmt::format("{}: epsilon must be > 0, got {}", owner, epsilon));
  const at::Tensor cost = checked_cost(cost_in, owner);
  const int64_t n = cost.size(0), m = cost.size(1);
  const double log_a = -std::log(double(n)), log_b = -std::log(double(m));
  at::Tensor f = at::zeros({n}, cost.options()), g = at::zeros({m}, cost.options());
  const at::Tensor k = -cost / epsilon;  // log kernel
  DensePlan out;
  double err = std::numeric_limits<double>::infinity();
  for (int64_t it = 1; it <= max_iter; ++it) {
    // f_i = eps (log a - logsumexp_j (g_j - C_ij) / eps), then g likewise: columns are exact after the g update.
    f = epsilon * (log_a - at::logsumexp(k + g.unsqueeze(0) / epsilon, 1));
    g = epsilon * (log_b - at::logsumexp(k + f.unsqueeze(1) / epsilon, 0));
    const at::Tensor log_p = k + (f.unsqueeze(1) + g.unsqueeze(0)) / epsilon;
    err = (log_p.exp().sum(1) - std::exp(log_a)).abs().max().item<double>();
    out.iterations = it;
    if (err < tol / double(n)) {
      out.plan = log_p.exp();
      out.cost = (out.plan * cost).sum().item<double>();
      return out;
    }
  }
  throw Error(fmt::format("{}: Sinkhorn did not converge in {} iterations at epsilon = {} (largest row-sum error {}, "
                          "asked for {}): raise max_iter or epsilon",
                          owner, max_iter, epsilon, err, tol / double(n)));
}

}  // namespace flowlab

#include "flowlab/coupling.hpp"

namespace flowlab {

Tensor squared_euclidean_cost(const Tensor& x0, const Tensor& x1) {
  const at::Tensor a = x0.flatten(1).to(at::kCPU, at::kDouble), b = x1.flatten(1).to(at::kCPU, at::kDouble);
  // Differences formed directly (no |a|^2 + |b|^2 - 2ab cancellation), in row blocks to bound memory.
  at::Tensor out = at::empty({a.size(0), b.size(0)}, a.options());
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, b.size(0) * a.size(1)));
  for (int64_t i = 0; i < a.size(0); i += block) {
    const int64_t e = std::min(a.size(0), i + block);
    out.slice(0, i, e).copy_((a.slice(0, i, e).unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(2));
  }
  return out;
}

Pairing sample_pairs(const Tensor& plan, int64_t batch) {
  const at::Tensor p = plan.to(at::kCPU, at::kDouble).flatten();
  const at::Tensor k = at::multinomial(p / p.sum(), batch, /*replacement=*/true);
  return {at::floor_divide(k, plan.size(1)), k.remainder(plan.size(1))};
}

}  // namespace flowlab
