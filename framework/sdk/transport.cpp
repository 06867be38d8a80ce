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
#include <type_traits>

#include "flowlab/errors.hpp"
#include "flowlab/detail/assignment.hpp"
#include "flowlab/detail/cpu_clones.hpp"

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
  if (!all_finite(c.data_ptr<double>(), c.numel()))
    throw Error(fmt::format("{}: the cost matrix holds NaN or Inf", owner));
  return c;
}

}  // namespace

SparsePlan exact_transport(const Tensor& cost_in, const std::string& owner) {
  const at::Tensor cost = checked_cost(cost_in, owner);
  const int64_t n = cost.size(0), m = cost.size(1);
  const int64_t g = std::gcd(n, m), supply = m / g, demand = n / g;
  if (n * m > std::numeric_limits<int>::max() || n * supply > std::numeric_limits<int>::max())
    throw Error(
        fmt::format("{}: {} x {} points are more than the solver's int arc ids and flows can hold", owner, n, m));
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

template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();

/// One step of the assignment search: sh_j = min(sh_j, base + (c_j - w_j)) over `np` columns (a multiple of 16),
/// then the smallest sh_j and the first column that holds it. Finished and padding columns carry w_j = -inf, so
/// their sh_j stays +inf. Every version does the same operations in T in the same order (no products, so nothing
/// to contract into an FMA): the same assignment on every CPU. A struct, so that the search loop is compiled with
/// its step inlined (augment).
template <class T>
struct ScalarStep {
  static T step(const T* c, const T* w, T* sh, int64_t np, T base, int64_t& at) {
    T lowest = kInf<T>;
    for (int64_t j = 0; j < np; ++j) {
      const T r = base + (c[j] - w[j]);
      sh[j] = r < sh[j] ? r : sh[j];
      lowest = sh[j] < lowest ? sh[j] : lowest;
    }
    int64_t j = 0;
    while (j < np && !(sh[j] == lowest)) ++j;
    at = j;
    return lowest;
  }
};

/// min_j (c_j - v_j) over `np` columns.
double row_min_scalar(const double* c, const double* v, int64_t np) {
  double lowest = kInf<double>;
  for (int64_t j = 0; j < np; ++j) {
    const double r = c[j] - v[j];
    lowest = r < lowest ? r : lowest;
  }
  return lowest;
}

/// Appends to `out` every column k != skip with (c_k - v_k) - a < tol.
void near_ties_scalar(const double* c, const double* v, int64_t np, double a, double tol, int64_t skip,
                      std::vector<int64_t>& out) {
  for (int64_t k = 0; k < np; ++k)
    if (k != skip && (c[k] - v[k]) - a < tol) out.push_back(k);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define FLOWLAB_HAVE_AVX2_SEARCH 1
#define FLOWLAB_AVX2 __attribute__((target("avx2"), always_inline)) static inline

/// The AVX2 operations of the search for one floating type: 4 doubles or 8 floats per vector.
template <class T>
struct Avx2;
template <>
struct Avx2<double> {
  using V = __m256d;
  static constexpr int64_t kLanes = 4;
  FLOWLAB_AVX2 V set1(double x) { return _mm256_set1_pd(x); }
  FLOWLAB_AVX2 V load(const double* p) { return _mm256_loadu_pd(p); }
  FLOWLAB_AVX2 void store(double* p, V x) { _mm256_storeu_pd(p, x); }
  FLOWLAB_AVX2 V add(V a, V b) { return _mm256_add_pd(a, b); }
  FLOWLAB_AVX2 V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  FLOWLAB_AVX2 V min(V a, V b) { return _mm256_min_pd(a, b); }
  FLOWLAB_AVX2 int equal(V a, V b) { return _mm256_movemask_pd(_mm256_cmp_pd(a, b, _CMP_EQ_OQ)); }
};
template <>
struct Avx2<float> {
  using V = __m256;
  static constexpr int64_t kLanes = 8;
  FLOWLAB_AVX2 V set1(float x) { return _mm256_set1_ps(x); }
  FLOWLAB_AVX2 V load(const float* p) { return _mm256_loadu_ps(p); }
  FLOWLAB_AVX2 void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  FLOWLAB_AVX2 V add(V a, V b) { return _mm256_add_ps(a, b); }
  FLOWLAB_AVX2 V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  FLOWLAB_AVX2 V min(V a, V b) { return _mm256_min_ps(a, b); }
  FLOWLAB_AVX2 int equal(V a, V b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
};

// Two vectors per iteration in two independent chains of minima (vminps' latency would otherwise bound the loop),
// so np must be a multiple of 2 kLanes (16 floats). Zen 4 runs the same loops written for AVX-512 no faster (it
// splits 512-bit operations in two), so there is no third version.
template <class T>
struct Avx2Step {
  __attribute__((target("avx2"))) static T step(const T* c, const T* w, T* sh, int64_t np, T base, int64_t& at) {
    using A = Avx2<T>;
    constexpr int64_t L = A::kLanes;
    const typename A::V vbase = A::set1(base);
    typename A::V low0 = A::set1(kInf<T>), low1 = low0;
    for (int64_t j = 0; j < np; j += 2 * L) {
      const typename A::V r0 = A::add(vbase, A::sub(A::load(c + j), A::load(w + j)));
      const typename A::V r1 = A::add(vbase, A::sub(A::load(c + j + L), A::load(w + j + L)));
      const typename A::V s0 = A::min(r0, A::load(sh + j)), s1 = A::min(r1, A::load(sh + j + L));
      A::store(sh + j, s0);
      A::store(sh + j + L, s1);
      low0 = A::min(low0, s0);
      low1 = A::min(low1, s1);
    }
    alignas(32) T lanes[L];
    A::store(lanes, A::min(low0, low1));
    T lowest = lanes[0];
    for (int64_t k = 1; k < L; ++k) lowest = std::min(lowest, lanes[k]);
    const typename A::V vlow = A::set1(lowest);
    for (int64_t j = 0; j < np; j += L)
      if (const int eq = A::equal(A::load(sh + j), vlow)) {
        at = j + __builtin_ctz(static_cast<unsigned>(eq));
        return lowest;
      }
    at = np;
    return lowest;
  }
};

__attribute__((target("avx2"))) double row_min_avx2(const double* c, const double* v, int64_t np) {
  __m256d low0 = _mm256_set1_pd(kInf<double>), low1 = low0;
  for (int64_t j = 0; j < np; j += 8) {
    low0 = _mm256_min_pd(_mm256_sub_pd(_mm256_loadu_pd(c + j), _mm256_loadu_pd(v + j)), low0);
    low1 = _mm256_min_pd(_mm256_sub_pd(_mm256_loadu_pd(c + j + 4), _mm256_loadu_pd(v + j + 4)), low1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_min_pd(low0, low1));
  return std::min(std::min(lanes[0], lanes[1]), std::min(lanes[2], lanes[3]));
}

__attribute__((target("avx2"))) void near_ties_avx2(const double* c, const double* v, int64_t np, double a, double tol,
                                                    int64_t skip, std::vector<int64_t>& out) {
  const __m256d va = _mm256_set1_pd(a), vtol = _mm256_set1_pd(tol);
  for (int64_t j = 0; j < np; j += 4) {
    const __m256d r = _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(c + j), _mm256_loadu_pd(v + j)), va);
    for (int m = _mm256_movemask_pd(_mm256_cmp_pd(r, vtol, _CMP_LT_OQ)); m != 0; m &= m - 1)
      if (const int64_t k = j + __builtin_ctz(static_cast<unsigned>(m)); k != skip) out.push_back(k);
  }
}
#endif

/// v_j = min_i c_ij and best_j = the first row that attains it, over rows of stride np (row by row, so the loop
/// runs over contiguous memory and vectorises).
template <class T>
inline void column_minima(const T* __restrict c, int64_t n, int64_t np, T* __restrict v, int64_t* __restrict best) {
  for (int64_t j = 0; j < n; ++j) v[j] = c[j], best[j] = 0;
  for (int64_t i = 1; i < n; ++i) {
    const T* __restrict ci = c + i * np;
    for (int64_t j = 0; j < n; ++j) {
      const bool lower = ci[j] < v[j];
      v[j] = lower ? ci[j] : v[j];
      best[j] = lower ? i : best[j];
    }
  }
}
FLOWLAB_CPU_CLONES void column_minima_f32(const float* c, int64_t n, int64_t np, float* v, int64_t* best) {
  column_minima(c, n, np, v, best);
}
FLOWLAB_CPU_CLONES void column_minima_f64(const double* c, int64_t n, int64_t np, double* v, int64_t* best) {
  column_minima(c, n, np, v, best);
}

/// Column reduction: v_j = min_i c_ij (the first such row), column j to that row when the row is still free
/// (scanning j downwards); with u = 0 the duals are feasible and tight on these pairs.
template <class T>
void column_reduction(const T* c, int64_t n, int64_t np, std::vector<T>& v, std::vector<int64_t>& col4row,
                      std::vector<int64_t>& row4col) {
  std::vector<int64_t> best(static_cast<size_t>(n), 0);
  if constexpr (std::is_same_v<T, float>) column_minima_f32(c, n, np, v.data(), best.data());
  else column_minima_f64(c, n, np, v.data(), best.data());
  for (int64_t j = n - 1; j >= 0; --j) {
    const int64_t i = best[size_t(j)];
    if (col4row[size_t(i)] == -1) col4row[size_t(i)] = j, row4col[size_t(j)] = i;
  }
}

/// For each free row, one Dijkstra search over the reduced costs c_ij - u_i - v_j for the cheapest path to a free
/// column, then the path flipped and the duals updated. (u, v) must be feasible (reduced costs >= 0) and tight on
/// the pairs already made. The search runs over all columns at once in SIMD (finished columns masked by w_j =
/// -inf) rather than over a shrinking list: a search finishes a few dozen columns of hundreds, so the dense loop
/// does little extra work and runs 3-8 times faster. It keeps no predecessor per column; the path is recovered
/// after the search from the rows searched: a column's predecessor is a searched row that reaches the column's
/// final distance (computed exactly as in the search) before the column was finished, and the last such row, found
/// by scanning backwards, is most often the row searched just before. Step is ScalarStep<T> or Avx2Step<T>; the
/// callers below compile it inlined.
template <class T, class Step>
inline void augment(const T* c, int64_t n, int64_t np, std::vector<T>& u, std::vector<T>& v,
                    std::vector<int64_t>& col4row, std::vector<int64_t>& row4col) {
  const auto psize = static_cast<size_t>(np);
  std::vector<T> w(psize, 0), shortest(psize, kInf<T>), finished(psize, 0), bases(psize);
  std::vector<int64_t> seen_cols(psize), seen_rows(psize), finished_at(psize, 0);
  for (int64_t row = 0; row < n; ++row) {
    if (col4row[size_t(row)] != -1) continue;
    std::copy(v.begin(), v.end(), w.begin());
    std::fill(shortest.begin(), shortest.end(), kInf<T>);
    T min_val = 0;
    int64_t sink = -1, i = row, searched = 0;  // each step finishes one column: at most n steps
    while (sink == -1) {
      const T base = min_val - u[size_t(i)];
      seen_rows[size_t(searched)] = i, bases[size_t(searched)] = base;
      int64_t j = 0;
      min_val = Step::step(c + i * np, w.data(), shortest.data(), np, base, j);
      if (!(min_val < kInf<T>)) throw Error("the assignment problem is infeasible");
      finished[size_t(j)] = min_val, shortest[size_t(j)] = kInf<T>, w[size_t(j)] = -kInf<T>;
      seen_cols[size_t(searched)] = j;
      finished_at[size_t(j)] = ++searched;
      if (row4col[size_t(j)] == -1) sink = j;
      else i = row4col[size_t(j)];
    }
    u[size_t(row)] += min_val;
    for (int64_t k = 1; k < searched; ++k) {
      const int64_t r = seen_rows[size_t(k)];
      u[size_t(r)] += min_val - finished[size_t(col4row[size_t(r)])];
    }
    for (int64_t j = sink;;) {
      int64_t k = finished_at[size_t(j)] - 1;
      while (k >= 0 && !(bases[size_t(k)] + (c[seen_rows[size_t(k)] * np + j] - v[size_t(j)]) == finished[size_t(j)]))
        --k;
      if (k < 0) throw Error("optimal_assignment: lost the augmenting path (a bug: please report it)");
      const int64_t r = seen_rows[size_t(k)];
      row4col[size_t(j)] = r;
      std::swap(col4row[size_t(r)], j);
      if (r == row) break;
    }
    for (int64_t k = 0; k < searched; ++k) {
      const int64_t j = seen_cols[size_t(k)];
      v[size_t(j)] -= min_val - finished[size_t(j)];
    }
  }
}

template <class T>
using AugmentFn = void (*)(const T*, int64_t, int64_t, std::vector<T>&, std::vector<T>&, std::vector<int64_t>&,
                           std::vector<int64_t>&);

template <class T>
void augment_scalar(const T* c, int64_t n, int64_t np, std::vector<T>& u, std::vector<T>& v,
                    std::vector<int64_t>& col4row, std::vector<int64_t>& row4col) {
  augment<T, ScalarStep<T>>(c, n, np, u, v, col4row, row4col);
}

#ifdef FLOWLAB_HAVE_AVX2_SEARCH
// flatten: the search loop and its AVX2 step compiled as one function (about 10% faster than a call per step).
template <class T>
__attribute__((target("avx2"), flatten)) void augment_avx2(const T* c, int64_t n, int64_t np, std::vector<T>& u,
                                                           std::vector<T>& v, std::vector<int64_t>& col4row,
                                                           std::vector<int64_t>& row4col) {
  augment<T, Avx2Step<T>>(c, n, np, u, v, col4row, row4col);
}
#endif

/// The kernels of one CPU: the searches in float32 and float64, and the float64 row scans of the check.
struct Kernels {
  AugmentFn<float> augment32;
  AugmentFn<double> augment64;
  double (*row_min)(const double*, const double*, int64_t);
  void (*near_ties)(const double*, const double*, int64_t, double, double, int64_t, std::vector<int64_t>&);
};

Kernels kernels(AssignmentKernel kernel) {
  Kernels scalar{augment_scalar<float>, augment_scalar<double>, row_min_scalar, near_ties_scalar};
#ifdef FLOWLAB_HAVE_AVX2_SEARCH
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (kernel == AssignmentKernel::best) kernel = avx2 ? AssignmentKernel::avx2 : AssignmentKernel::scalar;
  if (kernel == AssignmentKernel::avx2) {
    if (!avx2) throw Error("optimal_assignment: this CPU has no AVX2");
    return {augment_avx2<float>, augment_avx2<double>, row_min_avx2, near_ties_avx2};
  }
#else
  if (kernel == AssignmentKernel::avx2) throw Error("optimal_assignment: AVX2 is an x86-64 instruction set");
#endif
  return scalar;
}

/// Float64 duals for the float32 solution, and the rows they do not certify freed. v starts as the float32 column
/// duals; those are tight only to float32's rounding, so each row's near-ties (columns within a relative 1e-5 of
/// its pair's reduced cost) decide: the dual of a row's column is raised until the row prefers it to each near-tie
/// (label correcting over those pairs only, from a first-in first-out queue of rows: raising v_j requeues the rows
/// that have j as a near-tie; at most 2n^2 row visits, as many as 2n passes over all rows). Then u_i = min_j c_ij -
/// v_j, which makes (u, v) feasible whatever the raises did; a row whose column does not attain that minimum is
/// freed for the float64 searches, so the order of the visits and the budget change only how many rows those
/// re-pair.
void certify(const double* c, int64_t n, int64_t np, const Kernels& k, std::vector<double>& u, std::vector<double>& v,
             std::vector<int64_t>& col4row, std::vector<int64_t>& row4col) {
  const auto size = static_cast<size_t>(n);
  std::vector<int64_t> row_ties_begin(size + 1, 0), row_tie_cols;
  for (int64_t i = 0; i < n; ++i) {
    const double* ci = c + i * np;
    const int64_t j = col4row[size_t(i)];
    k.near_ties(ci, v.data(), np, ci[j] - v[size_t(j)], 1e-5 * (std::abs(ci[j]) + std::abs(v[size_t(j)])), j,
                row_tie_cols);
    row_ties_begin[size_t(i) + 1] = static_cast<int64_t>(row_tie_cols.size());
  }
  // Both directions of the near-tie pairs, as compressed rows: row i's near-tie columns are
  // row_tie_cols[row_ties_begin[i] .. row_ties_begin[i + 1]), and the rows that have column j as a near-tie are
  // col_tie_rows[col_ties_begin[j] .. col_ties_begin[j + 1]) (a counting sort of row_tie_cols).
  std::vector<int64_t> col_ties_begin(static_cast<size_t>(np) + 1, 0), col_tie_rows(row_tie_cols.size());
  for (const int64_t t : row_tie_cols) ++col_ties_begin[size_t(t) + 1];
  std::partial_sum(col_ties_begin.begin(), col_ties_begin.end(), col_ties_begin.begin());
  {
    std::vector<int64_t> at(col_ties_begin.begin(), col_ties_begin.end() - 1);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = row_ties_begin[size_t(i)]; e < row_ties_begin[size_t(i) + 1]; ++e)
        col_tie_rows[size_t(at[size_t(row_tie_cols[size_t(e)])]++)] = i;
  }
  // A ring of n slots: a row is queued at most once at a time.
  std::vector<int64_t> queue(size);
  std::iota(queue.begin(), queue.end(), int64_t{0});
  std::vector<char> queued(size, 1);
  size_t head = 0, queued_rows = size;
  for (int64_t visits = 0, budget = 2 * n * n; queued_rows > 0 && visits < budget; ++visits) {
    const int64_t i = queue[head];
    head = head + 1 == size ? 0 : head + 1;
    --queued_rows;
    queued[size_t(i)] = 0;
    const double* ci = c + i * np;
    const int64_t j = col4row[size_t(i)];
    double& vj = v[size_t(j)];
    bool raised = false;
    for (int64_t e = row_ties_begin[size_t(i)]; e < row_ties_begin[size_t(i) + 1]; ++e) {
      const int64_t t = row_tie_cols[size_t(e)];
      const double rt = ci[t] - v[size_t(t)];
      if (ci[j] - vj <= rt) continue;
      vj = ci[j] - rt;
      while (ci[j] - vj > rt) vj = std::nextafter(vj, kInf<double>);
      raised = true;
    }
    if (raised)
      for (int64_t e = col_ties_begin[size_t(j)]; e < col_ties_begin[size_t(j) + 1]; ++e)
        if (const int64_t r = col_tie_rows[size_t(e)]; !queued[size_t(r)]) {
          queued[size_t(r)] = 1;
          queue[(head + queued_rows++) % size] = r;
        }
  }
  for (int64_t i = 0; i < n; ++i) {
    const double* ci = c + i * np;
    u[size_t(i)] = k.row_min(ci, v.data(), np);
    const int64_t j = col4row[size_t(i)];
    if (!(ci[j] - v[size_t(j)] == u[size_t(i)])) col4row[size_t(i)] = -1, row4col[size_t(j)] = -1;
  }
}

/// c32 = c rounded to float32, and whether every |c| is below 1e30, so that the float32 search neither overflows
/// nor meets inf - inf (one pass; the flag accumulates as an integer, so the loop vectorises).
FLOWLAB_CPU_CLONES bool to_float32(const double* __restrict c, int64_t count, float* __restrict c32) {
  uint64_t big = 0;
  for (int64_t k = 0; k < count; ++k) {
    c32[k] = static_cast<float>(c[k]);
    big |= static_cast<uint64_t>(std::abs(c[k]) >= 1e30);
  }
  return big == 0;
}

/// The minimum-cost assignment of a dense square cost matrix by shortest augmenting paths with dual variables
/// (Jonker and Volgenant 1987: column reduction, then for each row left free one Dijkstra search over reduced
/// costs, as Crouse 2016 and SciPy's linear_sum_assignment). JV's augmenting row reduction is left out: in a trial
/// on 256-point batches it removed 15-20% of the search steps for about half as many extra row scans (about 10%
/// faster), which does not pay for its code. Two stages: the whole solution in float32 (twice the
/// columns per SIMD operation: the search steps run about 1.5x faster), then float64 duals that certify it
/// (certify), and float64 searches for the rows they do not, so the result is optimal for the float64 costs
/// exactly as a float64 solve is; on 256-point batches the float64 stage frees no row or a few. Costs of 1e30 or
/// more are solved in float64 only. O(n^3) in the worst case. LEMON has no dense assignment solver; its network
/// simplex (exact_transport) solves the same problem several times slower (benchmarks/ot_vs_pot.sh).
std::vector<int64_t> shortest_augmenting_path(const double* cost, int64_t n, AssignmentKernel kernel) {
  const Kernels k = kernels(kernel);
  const int64_t np = (n + 15) / 16 * 16;  // the row stride: padded to whole SIMD iterations
  const auto size = static_cast<size_t>(n), psize = static_cast<size_t>(np);
  std::vector<double> padded;
  const double* c = cost;
  if (np != n) {
    padded.assign(size * psize, 0.0);
    for (int64_t i = 0; i < n; ++i) std::copy(cost + i * n, cost + (i + 1) * n, padded.begin() + i * np);
    c = padded.data();
  }
  // Padding columns carry v_j = -inf for good: copied into w, they never enter a search.
  std::vector<double> u(size, 0.0), v(psize, -kInf<double>);
  std::vector<int64_t> col4row(size, -1), row4col(psize, -1);
  std::vector<float> c32(size * psize);
  if (to_float32(c, n * np, c32.data())) {
    std::vector<float> u32(size, 0.0f), v32(psize, -kInf<float>);
    column_reduction(c32.data(), n, np, v32, col4row, row4col);
    k.augment32(c32.data(), n, np, u32, v32, col4row, row4col);
    std::copy(v32.begin(), v32.begin() + n, v.begin());
    certify(c, n, np, k, u, v, col4row, row4col);
  } else {
    column_reduction(c, n, np, v, col4row, row4col);
  }
  k.augment64(c, n, np, u, v, col4row, row4col);
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

Tensor optimal_assignment(const Tensor& cost, const std::string& owner) {
  return optimal_assignment(cost, owner, AssignmentKernel::best);
}

DensePlan sinkhorn_transport(const Tensor& cost_in, double epsilon, double tol, int64_t max_iter,
                             const std::string& owner) {
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

namespace {

/// row_j = sum_k (a_k - b_kj)^2 for one point a of d coordinates against the m columns of b [d, m]. Compiled for
/// the baseline instruction set only (no FMA to contract the products into): the same bits on every CPU.
void pairwise_row(const double* a, const double* __restrict b, int64_t m, int64_t d, double* __restrict row) {
  const double a0 = a[0];
  for (int64_t j = 0; j < m; ++j) {
    const double diff = a0 - b[j];
    row[j] = diff * diff;
  }
  for (int64_t k = 1; k < d; ++k) {
    const double ak = a[k];
    const double* __restrict bk = b + k * m;
    for (int64_t j = 0; j < m; ++j) {
      const double diff = ak - bk[j];
      row[j] += diff * diff;
    }
  }
}

}  // namespace

Tensor squared_euclidean_cost(const Tensor& x0, const Tensor& x1) {
  const at::Tensor a = x0.flatten(1).to(at::kCPU, at::kDouble), b = x1.flatten(1).to(at::kCPU, at::kDouble);
  if (a.size(1) > 8) {
    // High dimensions: |a|^2 + |b|^2 - 2 a.b with one float64 GEMM (the differences would be N x M x D numbers).
    // The cancellation error is about 1e-16 (|a|^2 + |b|^2), far below any distance that decides an assignment.
    const at::Tensor out = at::addmm((a * a).sum(1, true) + (b * b).sum(1).unsqueeze(0), a, b.t(), 1.0, -2.0);
    return out.clamp_min_(0.0);
  }
  // Low dimensions: the differences formed directly (no cancellation). x1 is read coordinate by coordinate so the
  // loop over a row runs over contiguous memory (and vectorises); the squares are summed over coordinates in order.
  const at::Tensor ac = a.contiguous(), bt = b.t().contiguous();
  const int64_t n = ac.size(0), m = bt.size(1), d = ac.size(1);
  if (d == 0) return at::zeros({n, m}, ac.options());
  at::Tensor out = at::empty({n, m}, ac.options());
  const double *pa = ac.data_ptr<double>(), *pb = bt.data_ptr<double>();
  double* po = out.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) pairwise_row(pa + i * d, pb, m, d, po + i * m);
  return out;
}

Pairing sample_pairs(const Tensor& plan, int64_t batch) {
  const at::Tensor p = plan.to(at::kCPU, at::kDouble).flatten();
  const at::Tensor k = at::multinomial(p / p.sum(), batch, /*replacement=*/true);
  return {at::floor_divide(k, plan.size(1)), k.remainder(plan.size(1))};
}

}  // namespace flowlab
