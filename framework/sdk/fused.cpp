// Linear + activation in one op (see fused.hpp). The loops are plain C++ that the compiler vectorises; each is
// cloned for AVX-512, AVX2 and the baseline and picked at load time. Built with -ffp-contract=off, so no clone
// fuses a multiply-add that another does not: the results do not depend on the CPU's features.
#include "flowlab/fused.hpp"
#include "flowlab/objective.hpp"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/autograd.h>
#include <torch/version.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "exp_approx.hpp"
#include "flowlab/detail/cpu_clones.hpp"
#include "flowlab/errors.hpp"

#ifdef FLOWLAB_HAVE_BLAS
// The reference BLAS interface, as LibTorch itself calls it (libblas.so.3; OpenBLAS through Debian's alternatives).
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);
#endif

namespace flowlab {
namespace {

// SELU's constants (Klambauer et al. 2017), as ATen's selu.
constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
constexpr float kSeluScale = 1.0507009873554804934193349852946f;

using detail::exp_approx;
using detail::ExpRange;

template <Activation A>
FLOWLAB_INLINE float activation_of(float a, ExpRange range) {
  if (A == Activation::silu) return a / (1.0f + exp_approx(-a, range));
  if (A == Activation::relu) return a < 0.0f ? 0.0f : a;  // NaN stays NaN, as at::relu
  return a > 0.0f ? kSeluScale * a : (kSeluScale * kSeluAlpha) * (exp_approx(a, range) - 1.0f);
}

// Forward over a [rows, cols] block, in place: a = z + bias (per column), z = act(a), so the matrix product's output,
// still in the cache, becomes the activation's. For silu with `sig`, also sig = sigmoid(a) and z = a sig (what
// backward needs); without it z = a / (1 + exp(-a)).
template <Activation A>
FLOWLAB_INLINE void forward_rows(float* z, const float* __restrict bias, float* __restrict sig, int64_t rows,
                                 int64_t cols, ExpRange range) {
  for (int64_t i = 0; i < rows; ++i) {
    float* __restrict zr = z + i * cols;
    if (A == Activation::silu && sig) {
      float* __restrict sr = sig + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const float a = zr[j] + bias[j];
        const float s = 1.0f / (1.0f + exp_approx(-a, range));
        sr[j] = s;
        zr[j] = a * s;
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) zr[j] = activation_of<A>(zr[j] + bias[j], range);
    }
  }
}

#define FLOWLAB_FORWARD(name, A)                                                                                   \
  FLOWLAB_CPU_CLONES void name(float* z, const float* b, float* sig, int64_t rows, int64_t cols, ExpRange range) { \
    forward_rows<A>(z, b, sig, rows, cols, range);                                                                 \
  }
FLOWLAB_FORWARD(forward_silu, Activation::silu)
FLOWLAB_FORWARD(forward_relu, Activation::relu)
FLOWLAB_FORWARD(forward_selu, Activation::selu)

// Backward: ga = g act'(a), from the output y (and, for silu, sig = sigmoid(a): silu' = sig + y (1 - sig), as
// ATen's silu_backward with y = a sig); relu' and selu' follow from y alone. db = the column sums of ga, in float
// over blocks of kBlockRows rows and in double across blocks.
constexpr int64_t kBlockRows = 16;
template <Activation A>
FLOWLAB_INLINE void backward_rows(const float* __restrict g, const float* __restrict y, const float* __restrict sig,
                                  float* __restrict ga, float* __restrict block_sum, double* __restrict db,
                                  int64_t rows, int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += kBlockRows) {
    for (int64_t j = 0; j < cols; ++j) block_sum[j] = 0.0f;
    for (int64_t i = i0; i < std::min(rows, i0 + kBlockRows); ++i) {
      const float* gr = g + i * cols;
      const float* yr = y + i * cols;
      float* out = ga + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        float d;
        if (A == Activation::silu) {
          const float s = sig[i * cols + j];
          d = gr[j] * (s + yr[j] * (1.0f - s));
        } else if (A == Activation::relu) {
          d = yr[j] > 0.0f ? gr[j] : 0.0f;
        } else {
          d = yr[j] > 0.0f ? gr[j] * kSeluScale : gr[j] * (yr[j] + kSeluScale * kSeluAlpha);
        }
        out[j] = d;
        block_sum[j] += d;
      }
    }
    for (int64_t j = 0; j < cols; ++j) db[j] += double(block_sum[j]);
  }
}

FLOWLAB_CPU_CLONES void backward_silu(const float* g, const float* y, const float* sig, float* ga, float* block_sum,
                                      double* db, int64_t rows, int64_t cols) {
  backward_rows<Activation::silu>(g, y, sig, ga, block_sum, db, rows, cols);
}
FLOWLAB_CPU_CLONES void backward_relu(const float* g, const float* y, const float* sig, float* ga, float* block_sum,
                                      double* db, int64_t rows, int64_t cols) {
  backward_rows<Activation::relu>(g, y, sig, ga, block_sum, db, rows, cols);
}
FLOWLAB_CPU_CLONES void backward_selu(const float* g, const float* y, const float* sig, float* ga, float* block_sum,
                                      double* db, int64_t rows, int64_t cols) {
  backward_rows<Activation::selu>(g, y, sig, ga, block_sum, db, rows, cols);
}

// z = act(z + b) over the [rows, cols] block z, in place; for silu with `sig`, sigmoid(z + b) too.
void forward_act(Activation act, float* z, const float* b, float* sig, int64_t rows, int64_t cols) {
  if (act == Activation::silu) forward_silu(z, b, sig, rows, cols, ExpRange());
  else if (act == Activation::relu) forward_relu(z, b, nullptr, rows, cols, ExpRange());
  else forward_selu(z, b, nullptr, rows, cols, ExpRange());
}
void forward_kernel(Activation act, const Tensor& z, const Tensor& bias, float* sig) {
  const Tensor b = bias.contiguous();
  forward_act(act, z.data_ptr<float>(), b.data_ptr<float>(), sig, z.size(0), z.size(1));
}

// ga = g act'(a) from y = act(a) (and sig for silu), with the column sums of ga added to db.
void backward_act(Activation act, const float* g, const float* y, const float* sig, float* ga, float* block_sum,
                  double* db, int64_t rows, int64_t cols) {
  if (act == Activation::silu) backward_silu(g, y, sig, ga, block_sum, db, rows, cols);
  else if (act == Activation::relu) backward_relu(g, y, sig, ga, block_sum, db, rows, cols);
  else backward_selu(g, y, sig, ga, block_sum, db, rows, cols);
}

// db[j] += the sum over rows of g[i, j]: in float over blocks of kBlockRows rows, in double across blocks.
FLOWLAB_CPU_CLONES void column_sums(const float* __restrict g, float* __restrict block_sum, double* __restrict db,
                                    int64_t rows, int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += kBlockRows) {
    for (int64_t j = 0; j < cols; ++j) block_sum[j] = 0.0f;
    for (int64_t i = i0; i < std::min(rows, i0 + kBlockRows); ++i)
      for (int64_t j = 0; j < cols; ++j) block_sum[j] += g[i * cols + j];
    for (int64_t j = 0; j < cols; ++j) db[j] += double(block_sum[j]);
  }
}

// Row-major C [m, n] = op(A) op(B), or C += op(A) op(B) with `accumulate`: op(A) [m, k] is A, or with ta the
// transpose of A stored [k, m]; op(B) [k, n] is B, or with tb the transpose of B stored [n, k]; lda, ldb, ldc are the
// stored matrices' row strides. A column-major BLAS sees each of them transposed and computes C^T = op(B)^T op(A)^T,
// the call at::mm and at::addmm make for row-major operands (so the same bits), without the dispatcher. Built
// without a BLAS (FLOWLAB_WITH_BLAS=OFF), at::mm_out / at::addmm_out on views of the same memory.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
          bool accumulate, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
#ifdef FLOWLAB_HAVE_BLAS
  if (std::max({m, n, k, lda, ldb, ldc}) < INT_MAX) {
    const char trans_b = tb ? 'T' : 'N', trans_a = ta ? 'T' : 'N';
    const int cm = int(n), cn = int(m), ck = int(k), clda = int(ldb), cldb = int(lda), cldc = int(ldc);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    sgemm_(&trans_b, &trans_a, &cm, &cn, &ck, &one, b, &clda, a, &cldb, &beta, c, &cldc);
    return;
  }
#endif
  auto view = [](const float* p, int64_t rows, int64_t cols, int64_t ld, bool transposed) {
    const Tensor stored = at::from_blob(const_cast<float*>(p), {transposed ? cols : rows, transposed ? rows : cols},
                                        {ld, 1}, at::TensorOptions().dtype(at::kFloat));
    return transposed ? stored.t() : stored;
  };
  Tensor out = at::from_blob(c, {m, n}, {ldc, 1}, at::TensorOptions().dtype(at::kFloat));
  const Tensor op_a = view(a, m, k, lda, ta), op_b = view(b, k, n, ldb, tb);
  if (accumulate) at::addmm_out(out, out, op_a, op_b);
  else at::mm_out(out, op_a, op_b);
}

// SiLU alone over n elements: y = x sig (sig = sigmoid(x) kept when `sig`), or y = x / (1 + e^-x) in place.
FLOWLAB_CPU_CLONES void silu_forward(const float* __restrict x, float* __restrict y, float* __restrict sig, int64_t n,
                                     ExpRange range) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + exp_approx(-x[i], range));
    sig[i] = s;
    y[i] = x[i] * s;
  }
}
FLOWLAB_CPU_CLONES void silu_in_place(float* x, int64_t n, ExpRange range) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + exp_approx(-x[i], range));
}
FLOWLAB_CPU_CLONES void silu_backward(const float* __restrict g, const float* __restrict y, const float* __restrict sig,
                                      float* __restrict gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gx[i] = g[i] * (sig[i] + y[i] * (1.0f - sig[i]));
}

// FiLM then SiLU over planes of hw elements (one plane per (batch, channel)): u = h a_p + b_p, y = u sigmoid(u).
FLOWLAB_CPU_CLONES void film_silu_forward(const float* __restrict h, const float* __restrict a,
                                          const float* __restrict b, float* __restrict y, float* __restrict sig,
                                          int64_t planes, int64_t hw, ExpRange range) {
  for (int64_t p = 0; p < planes; ++p) {
    const float ap = a[p], bp = b[p];
    const float* hp = h + p * hw;
    float* yp = y + p * hw;
    if (sig) {
      float* sp = sig + p * hw;
      for (int64_t i = 0; i < hw; ++i) {
        const float u = hp[i] * ap + bp;
        const float s = 1.0f / (1.0f + exp_approx(-u, range));
        sp[i] = s;
        yp[i] = u * s;
      }
    } else {
      for (int64_t i = 0; i < hw; ++i) {
        const float u = hp[i] * ap + bp;
        yp[i] = u / (1.0f + exp_approx(-u, range));
      }
    }
  }
}

// Its backward: gu = g silu'(u); gh = gu a_p; per plane ga = sum gu h, gb = sum gu (in 16 float lanes, then double).
FLOWLAB_CPU_CLONES void film_silu_backward(const float* __restrict g, const float* __restrict h,
                                           const float* __restrict y, const float* __restrict sig,
                                           const float* __restrict a, float* __restrict gh, double* __restrict ga,
                                           double* __restrict gb, int64_t planes, int64_t hw) {
  constexpr int kLanes = 16;
  for (int64_t p = 0; p < planes; ++p) {
    const float ap = a[p];
    const int64_t o = p * hw;
    float la[kLanes] = {}, lb[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= hw; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const int64_t k = o + i + j;
        const float gu = g[k] * (sig[k] + y[k] * (1.0f - sig[k]));
        gh[k] = gu * ap;
        la[j] += gu * h[k];
        lb[j] += gu;
      }
    double sa = 0, sb = 0;
    for (; i < hw; ++i) {
      const int64_t k = o + i;
      const float gu = g[k] * (sig[k] + y[k] * (1.0f - sig[k]));
      gh[k] = gu * ap;
      sa += double(gu * h[k]);
      sb += double(gu);
    }
    for (int j = 0; j < kLanes; ++j) sa += double(la[j]), sb += double(lb[j]);
    ga[p] = sa;
    gb[p] = sb;
  }
}

// sin and cos of x for |x| <= 8192: Cephes' sinf/cosf (Moshier): x reduced by multiples of pi/4 in three parts
// (Cody-Waite), then a degree-7 odd and a degree-8 even polynomial on [-pi/4, pi/4]; about 1e-7 absolute error.
// Branch-free, so it vectorises. `bad` is set when |x| > 8192 or x is NaN (the caller then uses ATen).
FLOWLAB_INLINE void sincos_cephes(float xx, float& s, float& c, int& bad) {
  const float x = std::fabs(xx);
  bad |= !(x <= 8192.0f);
  // For |x| > 8192 or NaN (flagged, the result discarded) this conversion is out of int's range; guarding it with
  // a select keeps GCC 12 from vectorising the loop (7x slower), so the instruction's value (INT_MIN) is left.
  int32_t j = static_cast<int32_t>(x * 1.27323954473516f);  // octant: x / (pi / 4)
  j += j & 1;                                               // to the nearest even octant (zeros at the origin)
  const float y = static_cast<float>(j);
  const int32_t q = j & 7;
  const float r = ((x - y * 0.78515625f) - y * 2.4187564849853515625e-4f) - y * 3.77489497744594108e-8f;
  const float z = r * r;
  const float cp =
      ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
  const float sp = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
  const bool swap = (q & 2) != 0;  // octants 2 and 6: sin takes the cosine polynomial and cos the sine one
  const float sv = swap ? cp : sp, cv = swap ? sp : cp;
  s = ((xx < 0.0f) != (q >= 4)) ? -sv : sv;
  c = (q == 2 || q == 4) ? -cv : cv;
}

// out[i] = [cos(t_i f_0) .. cos(t_i f_{h-1}), sin(t_i f_0) .. sin(t_i f_{h-1}) (, 2 t_i - 1)]; returns nonzero when
// an argument was out of range.
FLOWLAB_CPU_CLONES int sincos_rows(const float* __restrict t, const float* __restrict f, float* __restrict out,
                                   int64_t rows, int64_t half, int odd) {
  int bad = 0;
  const int64_t dim = 2 * half + odd;
  for (int64_t i = 0; i < rows; ++i) {
    const float ti = t[i];
    float* o = out + i * dim;
    for (int64_t k = 0; k < half; ++k) {
      float sv, cv;
      sincos_cephes(ti * f[k], sv, cv, bad);
      o[k] = cv;
      o[half + k] = sv;
    }
    if (odd) o[dim - 1] = 2.0f * ti - 1.0f;
  }
  return bad;
}

// Grad mode is on inside a backward only when autograd records it (create_graph): these backwards are raw loops
// that autograd cannot see through, so a second derivative would come out silently missing.
void refuse_second_derivatives(const char* op) {
  if (at::GradMode::is_enabled())
    throw Error(fmt::format("{} is differentiable once: its backward cannot be recorded (create_graph)", op));
}

// Under CPU autocast (train.precision: bf16) the products must go through ATen, which casts them; the fused loops
// compute in float32 and would silently keep it.
bool cpu_autocast() {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

bool fusable(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act) {
  if (act == Activation::gelu || cpu_autocast() || aten_ops_only()) return false;
  for (const Tensor* t : {&x, &weight, &bias})
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != at::kFloat) return false;
  return x.dim() == 2 && weight.dim() == 2 && bias.numel() == weight.size(0) && x.size(1) == weight.size(1);
}

class LinearActivationFn : public torch::autograd::Function<LinearActivationFn> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                        const Tensor& bias, int64_t act_code) {
    const auto act = static_cast<Activation>(act_code);
    // y = act(z + b) is written over z, the product's own output (still in the cache).
    Tensor y = at::mm(x, weight.t());
    Tensor sig = act == Activation::silu ? at::empty_like(y) : Tensor();
    forward_kernel(act, y, bias, sig.defined() ? sig.data_ptr<float>() : nullptr);
    ctx->saved_data["act"] = act_code;
    if (sig.defined()) ctx->saved_data["sig"] = sig;
    ctx->saved_data["bias_shape"] = bias.sizes().vec();
    ctx->save_for_backward({x, weight, y});  // y: an output, saved as one (no reference cycle)
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    refuse_second_derivatives("linear_activation");
    const auto act = static_cast<Activation>(ctx->saved_data["act"].toInt());
    const auto saved = ctx->get_saved_variables();
    const Tensor& x = saved[0];
    const Tensor& weight = saved[1];
    const Tensor y = saved[2].contiguous();
    const Tensor sig = act == Activation::silu ? ctx->saved_data["sig"].toTensor() : Tensor();
    const Tensor g = grad_outputs[0].contiguous();
    const int64_t rows = g.size(0), cols = g.size(1);
    Tensor ga = at::empty_like(g);
    std::vector<double> db(static_cast<size_t>(cols), 0.0);
    std::vector<float> block_sum(static_cast<size_t>(cols));
    const float* gp = g.data_ptr<float>();
    const float* yp = y.data_ptr<float>();
    const float* sp = sig.defined() ? sig.data_ptr<float>() : nullptr;
    float* gap = ga.data_ptr<float>();
    backward_act(act, gp, yp, sp, gap, block_sum.data(), db.data(), rows, cols);
    const Tensor dx = ctx->needs_input_grad(0) ? at::mm(ga, weight) : Tensor();
    const Tensor dw = ctx->needs_input_grad(1) ? at::mm(ga.t(), x) : Tensor();
    Tensor dbias;
    if (ctx->needs_input_grad(2)) {  // the double column sums rounded to float, as .to(kFloat) rounds them
      dbias = at::empty(ctx->saved_data["bias_shape"].toIntVector(), g.options());
      float* dbp = dbias.data_ptr<float>();
      for (int64_t j = 0; j < cols; ++j) dbp[j] = static_cast<float>(db[size_t(j)]);
    }
    return {dx, dw, dbias, Tensor()};
  }
};

// The layers of mlp_layers() as one autograd node. Forward keeps every hidden layer's output (and, for silu, its
// sigmoid) in one buffer; backward walks the layers down with two scratch blocks for the activations' gradients.
class MlpLayersFn : public torch::autograd::Function<MlpLayersFn> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, at::TensorList params,
                        int64_t act_code) {
    const auto act = static_cast<Activation>(act_code);
    Tensor work;
    Tensor y = run(x, params, act, true, work);
    ctx->saved_data["act"] = act_code;
    // Saved as a variable, not in saved_data, so it is freed as soon as backward has run.
    std::vector<Tensor> keep = {work, x};
    for (size_t i = 0; i < params.size(); i += 2) keep.push_back(params[i]);  // the weights
    ctx->save_for_backward(keep);
    return y;
  }

  // The forward pass; with `keep`, work holds each hidden output (and sigmoid) for backward.
  static Tensor run(const Tensor& x, at::TensorList params, Activation act, bool keep, Tensor& work) {
    const int64_t rows = x.size(0), hidden = int64_t(params.size()) / 2 - 1;
    int64_t total = 0;
    for (int64_t i = 0; i < hidden; ++i) total += rows * params[size_t(2 * i)].size(0);
    const bool with_sig = keep && act == Activation::silu;
    work = at::empty({with_sig ? 2 * total : total}, x.options());
    float* h = work.data_ptr<float>();
    float* sig = with_sig ? h + total : nullptr;
    const float* in = x.data_ptr<float>();
    int64_t in_dim = x.size(1);
    for (int64_t i = 0; i < hidden; ++i) {
      const Tensor& w = params[size_t(2 * i)];
      const int64_t out_dim = w.size(0);
      gemm(false, true, rows, out_dim, in_dim, in, in_dim, w.data_ptr<float>(), in_dim, false, h, out_dim);
      forward_act(act, h, params[size_t(2 * i + 1)].data_ptr<float>(), sig, rows, out_dim);
      in = h;
      in_dim = out_dim;
      h += rows * out_dim;
      if (sig) sig += rows * out_dim;
    }
    // The output layer as at::addmm(b, h, W^T): every row starts as the bias, then the product is added to it.
    const Tensor& w = params[size_t(2 * hidden)];
    const int64_t out_dim = w.size(0);
    Tensor y = at::empty({rows, out_dim}, x.options());
    float* yp = y.data_ptr<float>();
    const float* bp = params[size_t(2 * hidden + 1)].data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) std::copy(bp, bp + out_dim, yp + r * out_dim);
    gemm(false, true, rows, out_dim, in_dim, in, in_dim, w.data_ptr<float>(), in_dim, true, yp, out_dim);
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    refuse_second_derivatives("mlp_layers");
    const auto act = static_cast<Activation>(ctx->saved_data["act"].toInt());
    auto saved = ctx->get_saved_variables();  // work, x, W_1 .. W_n, W_out
    const Tensor work = saved[0];
    saved.erase(saved.begin());
    const Tensor& x = saved[0];
    const int64_t hidden = int64_t(saved.size()) - 2;  // saved: x, W_1 .. W_n, W_out
    const int64_t rows = x.size(0);
    const Tensor g = grad_outputs[0].contiguous();
    const auto opts = g.options();

    // Each layer's input width, its output and (silu) sigmoid in `work`.
    const size_t layers = static_cast<size_t>(hidden + 1);
    std::vector<int64_t> in_dim(layers), out_dim(layers);
    std::vector<const float*> y(layers - 1), sig(layers - 1);
    int64_t total = 0, widest = x.size(1);
    for (int64_t i = 0; i <= hidden; ++i) {
      const Tensor& w = saved[size_t(i + 1)];
      out_dim[size_t(i)] = w.size(0);
      in_dim[size_t(i)] = w.size(1);
      widest = std::max(widest, w.size(0));
      if (i < hidden) total += rows * w.size(0);
    }
    const float* h = work.data_ptr<float>();
    for (int64_t i = 0, off = 0; i < hidden; off += rows * out_dim[size_t(i)], ++i) {
      y[size_t(i)] = h + off;
      sig[size_t(i)] = act == Activation::silu ? h + total + off : nullptr;
    }
    auto input_of = [&](int64_t i) { return i == 0 ? x.data_ptr<float>() : y[size_t(i - 1)]; };
    // needs_input_grad's index of W_i and b_i (x is 0).
    auto needs_w = [&](int64_t i) { return ctx->needs_input_grad(size_t(1 + 2 * i)); };
    auto needs_b = [&](int64_t i) { return ctx->needs_input_grad(size_t(2 + 2 * i)); };

    torch::autograd::variable_list grads(2 * layers + 2);  // x, (W, b) per layer, the act code
    const size_t widest_n = static_cast<size_t>(widest);
    std::vector<double> db(widest_n);
    std::vector<float> block_sum(widest_n);
    auto bias_grad = [&](int64_t i) {
      Tensor out = at::empty({out_dim[size_t(i)]}, opts);
      float* p = out.data_ptr<float>();
      for (int64_t j = 0; j < out_dim[size_t(i)]; ++j) p[j] = static_cast<float>(db[size_t(j)]);
      return out;
    };
    auto weight_grad = [&](int64_t i, const float* ga) {  // dW_i = ga^T h_{i-1}
      Tensor out = at::empty({out_dim[size_t(i)], in_dim[size_t(i)]}, opts);
      gemm(true, false, out_dim[size_t(i)], in_dim[size_t(i)], rows, ga, out_dim[size_t(i)], input_of(i),
           in_dim[size_t(i)], false, out.data_ptr<float>(), in_dim[size_t(i)]);
      return out;
    };
    // Two scratch blocks of [rows, widest]: the gradient reaching a layer's output and its activation's gradient.
    Tensor scratch = at::empty({2 * rows * widest}, opts);
    float* dh = scratch.data_ptr<float>();
    float* ga = dh + rows * widest;
    const bool need_dx = ctx->needs_input_grad(0);
    auto input_grad = [&](int64_t i, const float* grad_out, float* dst) {  // dh_{i-1} = grad_out W_i
      gemm(false, false, rows, in_dim[size_t(i)], out_dim[size_t(i)], grad_out, out_dim[size_t(i)],
           saved[size_t(i + 1)].data_ptr<float>(), in_dim[size_t(i)], false, dst, in_dim[size_t(i)]);
    };
    Tensor dx;
    if (need_dx) dx = at::empty({rows, x.size(1)}, opts);

    // The output layer: no activation, its gradient is g itself.
    const float* gp = g.data_ptr<float>();
    if (needs_w(hidden)) grads[size_t(1 + 2 * hidden)] = weight_grad(hidden, gp);
    if (needs_b(hidden)) {
      std::fill(db.begin(), db.end(), 0.0);
      column_sums(gp, block_sum.data(), db.data(), rows, out_dim[size_t(hidden)]);
      grads[size_t(2 + 2 * hidden)] = bias_grad(hidden);
    }
    if (hidden > 0) input_grad(hidden, gp, dh);
    else if (need_dx) input_grad(0, gp, dx.data_ptr<float>());
    for (int64_t i = hidden - 1; i >= 0; --i) {
      std::fill(db.begin(), db.end(), 0.0);
      backward_act(act, dh, y[size_t(i)], sig[size_t(i)], ga, block_sum.data(), db.data(), rows, out_dim[size_t(i)]);
      if (needs_w(i)) grads[size_t(1 + 2 * i)] = weight_grad(i, ga);
      if (needs_b(i)) grads[size_t(2 + 2 * i)] = bias_grad(i);
      if (i > 0) input_grad(i, ga, dh);
      else if (need_dx) input_grad(0, ga, dx.data_ptr<float>());
    }
    grads[0] = dx;
    return grads;
  }
};

bool cpu_float(std::initializer_list<const Tensor*> ts) {
  if (cpu_autocast() || aten_ops_only()) return false;  // forward-mode AD or a trace: ATen's ops
  for (const Tensor* t : ts)
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != at::kFloat) return false;
  return true;
}

class SiluFn : public torch::autograd::Function<SiluFn> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x) {
    const Tensor xc = x.contiguous();
    Tensor y = at::empty_like(xc), sig = at::empty_like(xc);
    silu_forward(xc.data_ptr<float>(), y.data_ptr<float>(), sig.data_ptr<float>(), xc.numel(), ExpRange());
    ctx->saved_data["sig"] = sig;
    ctx->save_for_backward({y});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    refuse_second_derivatives("silu");
    const Tensor y = ctx->get_saved_variables()[0];
    const Tensor sig = ctx->saved_data["sig"].toTensor();
    const Tensor g = grad_outputs[0].contiguous();
    Tensor gx = at::empty_like(g);
    silu_backward(g.data_ptr<float>(), y.data_ptr<float>(), sig.data_ptr<float>(), gx.data_ptr<float>(), g.numel());
    return {gx};
  }
};

class FilmSiluFn : public torch::autograd::Function<FilmSiluFn> {
 public:
  // h [B, C, ...] contiguous, scale and shift [B, C] contiguous.
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& h, const Tensor& scale,
                        const Tensor& shift) {
    const Tensor a = scale + 1;  // as h * (1 + scale) rounds it
    Tensor y = at::empty_like(h), sig = at::empty_like(h);
    const int64_t planes = scale.numel(), hw = h.numel() / planes;
    film_silu_forward(h.data_ptr<float>(), a.data_ptr<float>(), shift.data_ptr<float>(), y.data_ptr<float>(),
                      sig.data_ptr<float>(), planes, hw, ExpRange());
    ctx->saved_data["sig"] = sig;
    ctx->saved_data["a"] = a;
    ctx->save_for_backward({h, y});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    refuse_second_derivatives("film_silu");
    const auto saved = ctx->get_saved_variables();
    const Tensor& h = saved[0];
    const Tensor& y = saved[1];
    const Tensor sig = ctx->saved_data["sig"].toTensor(), a = ctx->saved_data["a"].toTensor();
    const Tensor g = grad_outputs[0].contiguous();
    const int64_t planes = a.numel(), hw = h.numel() / planes;
    Tensor gh = at::empty_like(h);
    Tensor ga = at::empty({planes}, a.options().dtype(at::kDouble)), gb = at::empty_like(ga);
    film_silu_backward(g.data_ptr<float>(), h.data_ptr<float>(), y.data_ptr<float>(), sig.data_ptr<float>(),
                       a.data_ptr<float>(), gh.data_ptr<float>(), ga.data_ptr<double>(), gb.data_ptr<double>(), planes,
                       hw);
    return {gh, ga.to(at::kFloat).view(a.sizes()), gb.to(at::kFloat).view(a.sizes())};
  }
};

}  // namespace

Tensor sin_cos_features(const Tensor& t, const std::vector<float>& frequencies, bool odd_column) {
  if (!t.device().is_cpu() || t.scalar_type() != at::kFloat || (t.requires_grad() && at::GradMode::is_enabled()) ||
      aten_ops_only())
    return Tensor();
  const Tensor tc = t.reshape({-1}).contiguous();
  const int64_t rows = tc.numel(), half = static_cast<int64_t>(frequencies.size());
  Tensor out = at::empty({rows, 2 * half + (odd_column ? 1 : 0)}, tc.options());
  if (sincos_rows(tc.data_ptr<float>(), frequencies.data(), out.data_ptr<float>(), rows, half, odd_column ? 1 : 0))
    return Tensor();
  return out;
}

Tensor silu(const Tensor& x) {
  if (!cpu_float({&x})) return at::silu(x);
  if (at::GradMode::is_enabled() && x.requires_grad()) return SiluFn::apply(x);
  Tensor y = x.contiguous().clone();
  silu_in_place(y.data_ptr<float>(), y.numel(), ExpRange());
  return y;
}

Tensor film_silu(const Tensor& h, const Tensor& scale, const Tensor& shift) {
  const bool fits = cpu_float({&h, &scale, &shift}) && h.dim() >= 2 && scale.numel() == h.size(0) * h.size(1) &&
                    shift.numel() == scale.numel();
  if (!fits) {
    std::vector<int64_t> shape = {-1, h.size(1)};  // [B or 1, C, 1, ...]
    shape.resize(static_cast<size_t>(h.dim()), 1);
    return at::silu(h * (1 + scale.reshape(shape)) + shift.reshape(shape));
  }
  const Tensor hc = h.contiguous(), sc = scale.reshape({h.size(0), h.size(1)}).contiguous(),
               bc = shift.reshape({h.size(0), h.size(1)}).contiguous();
  if (at::GradMode::is_enabled() && (h.requires_grad() || scale.requires_grad() || shift.requires_grad()))
    return FilmSiluFn::apply(hc, sc, bc).view(h.sizes());
  const Tensor a = sc + 1;
  Tensor y = at::empty_like(hc);
  film_silu_forward(hc.data_ptr<float>(), a.data_ptr<float>(), bc.data_ptr<float>(), y.data_ptr<float>(), nullptr,
                    a.numel(), hc.numel() / a.numel(), ExpRange());
  return y;
}

Activation activation_from_name(const std::string& name) {
  if (name == "silu") return Activation::silu;
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  if (name == "selu") return Activation::selu;
  throw Error(fmt::format("unknown activation '{}' (valid: silu, relu, gelu, selu)", name));
}

Tensor activate(const Tensor& x, Activation act) {
  switch (act) {
    case Activation::relu: return at::relu(x);
    case Activation::gelu: return at::gelu(x);
    case Activation::selu: return at::selu(x);
    case Activation::silu: break;
  }
  return at::silu(x);
}

Tensor mlp_layers(const Tensor& x, const std::vector<Tensor>& params, Activation act) {
  if (params.size() < 2 || params.size() % 2 != 0)
    throw Error(fmt::format("mlp_layers: params must be weight/bias pairs, got {} tensors", params.size()));
  // The fused node: CPU float32, silu/relu/selu, [B, in] input, contiguous [out, in] weights and [out] biases whose
  // widths chain.
  bool fits = act != Activation::gelu && cpu_float({&x}) && x.dim() == 2;
  int64_t width = fits ? x.size(1) : 0;
  bool record = at::GradMode::is_enabled() && x.requires_grad();
  for (size_t i = 0; fits && i < params.size(); i += 2) {
    const Tensor &w = params[i], &b = params[i + 1];
    fits = cpu_float({&w, &b}) && w.dim() == 2 && w.size(1) == width && w.is_contiguous() && b.is_contiguous() &&
           b.dim() == 1 && b.size(0) == w.size(0);
    if (fits) width = w.size(0);
    record = record || (at::GradMode::is_enabled() && (w.requires_grad() || b.requires_grad()));
  }
  if (!fits) {
    Tensor h = x;
    for (size_t i = 0; i + 2 < params.size(); i += 2) h = linear_activation(h, params[i], params[i + 1], act);
    return at::addmm(params[params.size() - 1], h, params[params.size() - 2].t());
  }
  const Tensor xc = x.contiguous();
  if (record) return MlpLayersFn::apply(xc, at::TensorList(params), static_cast<int64_t>(act));
  Tensor work;
  return MlpLayersFn::run(xc, params, act, false, work);
}

Tensor linear_activation(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act) {
  if (!fusable(x, weight, bias, act)) return activate(at::addmm(bias, x, weight.t()), act);
  const bool record =
      at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || bias.requires_grad());
  if (record) return LinearActivationFn::apply(x, weight, bias, static_cast<int64_t>(act));
  Tensor z = at::mm(x, weight.t());  // nothing to save: the activation overwrites the product in place
  forward_kernel(act, z, bias, nullptr);
  return z;
}

}  // namespace flowlab
