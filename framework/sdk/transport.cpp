// Exact transport with LEMON's NetworkSimplex on the dense bipartite graph; entropic transport by log-domain Sinkhorn.
#include "flowlab/transport.hpp"

#include <fmt/format.h>
#include <lemon/network_simplex.h>
#include <lemon/static_graph.h>

#include <algorithm>
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

namespace {

/// The minimum-cost assignment of a dense square cost matrix by shortest augmenting paths with dual variables
/// (Jonker and Volgenant 1987: column reduction, then for each row left free one Dijkstra-like search over reduced
/// costs c_ij - u_i - v_j, in the form of Crouse 2016 that SciPy's linear_sum_assignment uses; JV's augmenting row
/// reduction was tried and measured 3x slower on Gaussian batches, so it is left out). O(n^3) in the worst
/// case, and in double precision throughout (no rounding of the costs). LEMON has no
/// dense assignment solver; its network simplex (exact_transport) solves the same problem several times slower
/// (benchmarks/ot_vs_pot.sh).
std::vector<int64_t> shortest_augmenting_path(const double* c, int64_t n) {
  const double inf = std::numeric_limits<double>::infinity();
  const size_t size = static_cast<size_t>(n);
  std::vector<double> u(size, 0.0), v(size, 0.0), shortest(size, inf);
  std::vector<int64_t> path(size, -1), col4row(size, -1), row4col(size, -1), remaining(size, 0);
  std::vector<char> seen_row(size, 0), seen_col(size, 0);
  // Column reduction: v_j = min_i c_ij, column j to that row when the row is still free (scanning j downwards);
  // with u = 0 the duals are feasible and tight on these pairs, so the searches start from a partial optimum.
  for (int64_t j = 0; j < n; ++j) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
      if (c[i * n + j] < c[best * n + j]) best = i;
    v[size_t(j)] = c[best * n + j];
    remaining[size_t(j)] = best;
  }
  for (int64_t j = n - 1; j >= 0; --j) {
    const int64_t i = remaining[size_t(j)];
    if (col4row[size_t(i)] == -1) col4row[size_t(i)] = j, row4col[size_t(j)] = i;
  }
  std::vector<int64_t> free_rows;
  for (int64_t i = 0; i < n; ++i)
    if (col4row[size_t(i)] == -1) free_rows.push_back(i);
  for (const int64_t row : free_rows) {
    // Search from `row` for the cheapest path to an unassigned column.
    double min_val = 0;
    int64_t left = n;
    for (int64_t k = 0; k < n; ++k) remaining[size_t(k)] = n - k - 1;
    std::fill(seen_row.begin(), seen_row.end(), 0);
    std::fill(seen_col.begin(), seen_col.end(), 0);
    std::fill(shortest.begin(), shortest.end(), inf);
    int64_t sink = -1, i = row;
    while (sink == -1) {
      int64_t index = -1;
      double lowest = inf;
      seen_row[size_t(i)] = 1;
      const double* ci = c + i * n;
      const double base = min_val - u[size_t(i)];
      for (int64_t k = 0; k < left; ++k) {
        const int64_t j = remaining[size_t(k)];
        const double r = base + ci[j] - v[size_t(j)];
        if (r < shortest[size_t(j)]) path[size_t(j)] = i, shortest[size_t(j)] = r;
        if (shortest[size_t(j)] < lowest || (shortest[size_t(j)] == lowest && row4col[size_t(j)] == -1))
          lowest = shortest[size_t(j)], index = k;
      }
      min_val = lowest;
      if (!(min_val < inf)) throw Error("the assignment problem is infeasible");
      const int64_t j = remaining[size_t(index)];
      if (row4col[size_t(j)] == -1) sink = j; else i = row4col[size_t(j)];
      seen_col[size_t(j)] = 1;
      remaining[size_t(index)] = remaining[size_t(--left)];
    }
    // Update the duals, then flip the path.
    u[size_t(row)] += min_val;
    for (int64_t r = 0; r < n; ++r)
      if (seen_row[size_t(r)] && r != row) u[size_t(r)] += min_val - shortest[size_t(col4row[size_t(r)])];
    for (int64_t j = 0; j < n; ++j)
      if (seen_col[size_t(j)]) v[size_t(j)] -= min_val - shortest[size_t(j)];
    for (int64_t j = sink;;) {
      const int64_t r = path[size_t(j)];
      row4col[size_t(j)] = r;
      std::swap(col4row[size_t(r)], j);
      if (r == row) break;
    }
  }
  return col4row;
}

}  // namespace

Tensor optimal_assignment(const Tensor& cost_in, const std::string& owner) {
  if (!cost_in.defined() || cost_in.dim() != 2 || cost_in.size(0) != cost_in.size(1))
    throw Error(fmt::format("{}: an assignment needs a square cost matrix, got {}", owner,
                            cost_in.defined() ? fmt::format("{}", fmt::join(cost_in.sizes(), " x ")) : "none"));
  const at::Tensor cost = checked_cost(cost_in, owner);
  return at::tensor(shortest_augmenting_path(cost.data_ptr<double>(), cost.size(0)), at::kLong);
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
  if (a.size(1) > 8) {
    // High dimensions: |a|^2 + |b|^2 - 2 a.b with one float64 GEMM (the differences would be N x M x D numbers).
    // The cancellation error is about 1e-16 (|a|^2 + |b|^2), far below any distance that decides an assignment.
    const at::Tensor out = at::addmm((a * a).sum(1, true) + (b * b).sum(1).unsqueeze(0), a, b.t(), 1.0, -2.0);
    return out.clamp_min_(0.0);
  }
  // Low dimensions: the differences formed directly (no cancellation), in one pass over the output.
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  const int64_t n = ac.size(0), m = bc.size(0), d = ac.size(1);
  at::Tensor out = at::empty({n, m}, ac.options());
  const double *pa = ac.data_ptr<double>(), *pb = bc.data_ptr<double>();
  double* po = out.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double diff = pa[i * d + k] - pb[j * d + k];
        s += diff * diff;
      }
      po[i * m + j] = s;
    }
  return out;
}

Pairing sample_pairs(const Tensor& plan, int64_t batch) {
  const at::Tensor p = plan.to(at::kCPU, at::kDouble).flatten();
  const at::Tensor k = at::multinomial(p / p.sum(), batch, /*replacement=*/true);
  return {at::floor_divide(k, plan.size(1)), k.remainder(plan.size(1))};
}

}  // namespace flowlab
