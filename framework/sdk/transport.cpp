// Exact transport with LEMON's NetworkSimplex on the dense bipartite graph; entropic transport by log-domain Sinkhorn.
#include "flowlab/transport.hpp"

#include <fmt/format.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <lemon/network_simplex.h>
#include <lemon/static_graph.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <numeric>

#include "flowlab/errors.hpp"
#include "flowlab/fused.hpp"  // FLOWLAB_CPU_CLONES

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

/// Whether every number is finite, in one pass over the bits (an exponent of all ones is Inf or NaN; integer ops, so
/// the loop vectorises); at::isfinite + all took a quarter of a 256-point assignment.
FLOWLAB_CPU_CLONES bool all_finite(const double* __restrict x, int64_t n) {
  constexpr uint64_t kExponent = 0x7ff0000000000000ull;
  uint64_t bad = 0;
  for (int64_t k = 0; k < n; ++k) {
    uint64_t bits;
    std::memcpy(&bits, x + k, sizeof bits);
    bad |= static_cast<uint64_t>((bits & kExponent) == kExponent);
  }
  return bad == 0;
}

at::Tensor checked_cost(const Tensor& cost, const std::string& owner) {
  if (!cost.defined() || cost.dim() != 2 || cost.size(0) < 1 || cost.size(1) < 1)
    throw Error(fmt::format("{}: the cost must be a matrix [N, M] with N, M >= 1", owner));
  const at::Tensor c = cost.to(at::kCPU, at::kDouble).contiguous();
  if (!all_finite(c.data_ptr<double>(), c.numel())) throw Error(fmt::format("{}: the cost matrix holds NaN or Inf", owner));
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

constexpr double kInf = std::numeric_limits<double>::infinity();

/// One step of the assignment search: sh_j = min(sh_j, base + (c_j - w_j)) over `np` columns (a multiple of 8),
/// then the smallest sh_j and the first column that holds it. Finished and padding columns carry w_j = -inf, so
/// their sh_j stays +inf. Both versions do the same float64 operations in the same order (no products, so nothing
/// to contract into an FMA): the same assignment on every CPU.
using SearchStep = double (*)(const double* c, const double* w, double* sh, int64_t np, double base, int64_t* at);

double search_step_scalar(const double* c, const double* w, double* sh, int64_t np, double base, int64_t* at) {
  double lowest = kInf;
  for (int64_t j = 0; j < np; ++j) {
    const double r = base + (c[j] - w[j]);
    sh[j] = r < sh[j] ? r : sh[j];
    lowest = sh[j] < lowest ? sh[j] : lowest;
  }
  int64_t j = 0;
  while (j < np && !(sh[j] == lowest)) ++j;
  *at = j;
  return lowest;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define FLOWLAB_HAVE_AVX2_SEARCH 1
// 8 columns per iteration in two independent chains of 4 (vminpd's latency would otherwise bound the loop). Zen 4
// runs the same loop written for AVX-512 no faster (it splits 512-bit operations in two), so there is no third one.
__attribute__((target("avx2"))) double search_step_avx2(const double* c, const double* w, double* sh, int64_t np,
                                                        double base, int64_t* at) {
  const __m256d vbase = _mm256_set1_pd(base);
  __m256d low0 = _mm256_set1_pd(kInf), low1 = low0;
  for (int64_t j = 0; j < np; j += 8) {
    const __m256d r0 = _mm256_add_pd(vbase, _mm256_sub_pd(_mm256_loadu_pd(c + j), _mm256_loadu_pd(w + j)));
    const __m256d r1 = _mm256_add_pd(vbase, _mm256_sub_pd(_mm256_loadu_pd(c + j + 4), _mm256_loadu_pd(w + j + 4)));
    const __m256d s0 = _mm256_min_pd(r0, _mm256_loadu_pd(sh + j)), s1 = _mm256_min_pd(r1, _mm256_loadu_pd(sh + j + 4));
    _mm256_storeu_pd(sh + j, s0);
    _mm256_storeu_pd(sh + j + 4, s1);
    low0 = _mm256_min_pd(low0, s0);
    low1 = _mm256_min_pd(low1, s1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_min_pd(low0, low1));
  const double lowest = std::min(std::min(lanes[0], lanes[1]), std::min(lanes[2], lanes[3]));
  const __m256d vlow = _mm256_set1_pd(lowest);
  for (int64_t j = 0; j < np; j += 4)
    if (const int eq = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(sh + j), vlow, _CMP_EQ_OQ))) {
      *at = j + __builtin_ctz(static_cast<unsigned>(eq));
      return lowest;
    }
  *at = np;
  return lowest;
}
#endif

SearchStep search_step(AssignmentKernel kernel) {
#ifdef FLOWLAB_HAVE_AVX2_SEARCH
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (kernel == AssignmentKernel::best) kernel = avx2 ? AssignmentKernel::avx2 : AssignmentKernel::scalar;
  if (kernel == AssignmentKernel::avx2) {
    if (!avx2) throw Error("optimal_assignment: this CPU has no AVX2");
    return search_step_avx2;
  }
#else
  if (kernel == AssignmentKernel::avx2) throw Error("optimal_assignment: AVX2 is an x86-64 instruction set");
#endif
  return search_step_scalar;
}

/// v_j = min_i c_ij and best_j = the first row that attains it, over rows of stride np (row by row, so the loop
/// runs over contiguous memory and vectorises).
FLOWLAB_CPU_CLONES void column_minima(const double* __restrict c, int64_t n, int64_t np, double* __restrict v,
                                      int64_t* __restrict best) {
  for (int64_t j = 0; j < n; ++j) v[j] = c[j], best[j] = 0;
  for (int64_t i = 1; i < n; ++i) {
    const double* __restrict ci = c + i * np;
    for (int64_t j = 0; j < n; ++j) {
      const bool lower = ci[j] < v[j];
      v[j] = lower ? ci[j] : v[j];
      best[j] = lower ? i : best[j];
    }
  }
}

/// The minimum-cost assignment of a dense square cost matrix by shortest augmenting paths with dual variables
/// (Jonker and Volgenant 1987: column reduction, then for each row left free one Dijkstra search over reduced
/// costs c_ij - u_i - v_j, as Crouse 2016 and SciPy's linear_sum_assignment). JV's augmenting row reduction is
/// left out: in a trial on 256-point batches it removed 15-20% of the search steps for about half as many extra
/// row scans (about 10% faster), and an earlier version of it was 3x slower. The
/// search runs over all columns at once in SIMD (finished columns masked by w_j = -inf) rather than over a shrinking
/// list: a search finishes a few dozen columns of hundreds, so the dense loop does little extra work and runs 3-8
/// times faster. It keeps no predecessor per column; the path is recovered after the search from the rows searched
/// (a column's predecessor is the first searched row that reached its final distance). O(n^3) in the worst case,
/// float64 throughout (no rounding of the costs). LEMON has no dense assignment solver; its network simplex
/// (exact_transport) solves the same problem several times slower (benchmarks/ot_vs_pot.sh).
std::vector<int64_t> shortest_augmenting_path(const double* cost, int64_t n, AssignmentKernel kernel) {
  const SearchStep step = search_step(kernel);
  const int64_t np = (n + 7) / 8 * 8;  // the row stride: padded to whole SIMD iterations
  const auto size = static_cast<size_t>(n), psize = static_cast<size_t>(np);
  std::vector<double> padded;
  const double* c = cost;
  if (np != n) {
    padded.assign(size * psize, 0.0);
    for (int64_t i = 0; i < n; ++i) std::copy(cost + i * n, cost + (i + 1) * n, padded.begin() + i * np);
    c = padded.data();
  }
  // Padding columns carry v_j = -inf for good: copied into w, they never enter a search.
  std::vector<double> u(size, 0.0), v(psize, -kInf), w(psize, 0.0), shortest(psize, kInf), finished(psize, 0.0), bases;
  std::vector<int64_t> col4row(size, -1), row4col(psize, -1), best(size, 0), seen_cols, seen_rows, finished_at(psize, 0);
  // Column reduction: v_j = min_i c_ij (the first such row), column j to that row when the row is still free
  // (scanning j downwards); with u = 0 the duals are feasible and tight on these pairs, so the searches start from
  // a partial optimum.
  column_minima(c, n, np, v.data(), best.data());
  for (int64_t j = n - 1; j >= 0; --j) {
    const int64_t i = best[size_t(j)];
    if (col4row[size_t(i)] == -1) col4row[size_t(i)] = j, row4col[size_t(j)] = i;
  }
  for (int64_t row = 0; row < n; ++row) {
    if (col4row[size_t(row)] != -1) continue;
    // Search from `row` for the cheapest path to an unassigned column.
    std::copy(v.begin(), v.end(), w.begin());
    std::fill(shortest.begin(), shortest.end(), kInf);
    seen_cols.clear(), seen_rows.clear(), bases.clear();
    double min_val = 0;
    int64_t sink = -1, i = row;
    while (sink == -1) {
      const double base = min_val - u[size_t(i)];
      seen_rows.push_back(i), bases.push_back(base);
      int64_t j = 0;
      min_val = step(c + i * np, w.data(), shortest.data(), np, base, &j);
      if (!(min_val < kInf)) throw Error("the assignment problem is infeasible");
      finished[size_t(j)] = min_val, shortest[size_t(j)] = kInf, w[size_t(j)] = -kInf;
      finished_at[size_t(j)] = static_cast<int64_t>(seen_rows.size());
      seen_cols.push_back(j);
      if (row4col[size_t(j)] == -1) sink = j; else i = row4col[size_t(j)];
    }
    // Update the row duals, flip the path (each column's predecessor: the first row searched before the column was
    // finished whose distance to it equals its final one, computed exactly as in the search), then update the
    // column duals.
    u[size_t(row)] += min_val;
    for (size_t k = 1; k < seen_rows.size(); ++k) {
      const int64_t r = seen_rows[k];
      u[size_t(r)] += min_val - finished[size_t(col4row[size_t(r)])];
    }
    for (int64_t j = sink;;) {
      const auto searched = static_cast<size_t>(finished_at[size_t(j)]);
      size_t k = 0;
      while (k < searched && !(bases[k] + (c[seen_rows[k] * np + j] - v[size_t(j)]) == finished[size_t(j)])) ++k;
      if (k == searched) throw Error("optimal_assignment: lost the augmenting path (a bug: please report it)");
      const int64_t r = seen_rows[k];
      row4col[size_t(j)] = r;
      std::swap(col4row[size_t(r)], j);
      if (r == row) break;
    }
    for (const int64_t j : seen_cols) v[size_t(j)] -= min_val - finished[size_t(j)];
  }
  return col4row;
}

}  // namespace

Tensor optimal_assignment(const Tensor& cost_in, const std::string& owner, AssignmentKernel kernel) {
  if (!cost_in.defined() || cost_in.dim() != 2 || cost_in.size(0) != cost_in.size(1))
    throw Error(fmt::format("{}: an assignment needs a square cost matrix, got {}", owner,
                            cost_in.defined() ? fmt::format("{}", fmt::join(cost_in.sizes(), " x ")) : "none"));
  const at::Tensor cost = checked_cost(cost_in, owner);
  return at::tensor(shortest_augmenting_path(cost.data_ptr<double>(), cost.size(0), kernel), at::kLong);
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
  // Low dimensions: the differences formed directly (no cancellation). x1 is read coordinate by coordinate so the
  // loop over a row of the output runs over contiguous memory (and vectorises); the sum over coordinates keeps
  // its order.
  const at::Tensor ac = a.contiguous(), bt = b.t().contiguous();
  const int64_t n = ac.size(0), m = bt.size(1), d = ac.size(1);
  at::Tensor out = at::zeros({n, m}, ac.options());
  const double *pa = ac.data_ptr<double>(), *pb = bt.data_ptr<double>();
  double* po = out.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    double* row = po + i * m;
    for (int64_t k = 0; k < d; ++k) {
      const double ak = pa[i * d + k];
      const double* bk = pb + k * m;
      for (int64_t j = 0; j < m; ++j) {
        const double diff = ak - bk[j];
        row[j] += diff * diff;
      }
    }
  }
  return out;
}

Pairing sample_pairs(const Tensor& plan, int64_t batch) {
  const at::Tensor p = plan.to(at::kCPU, at::kDouble).flatten();
  const at::Tensor k = at::multinomial(p / p.sum(), batch, /*replacement=*/true);
  return {at::floor_divide(k, plan.size(1)), k.remainder(plan.size(1))};
}

}  // namespace flowlab
