// The blocked layout's own ops (blocked.hpp), except the convolution (onednn_conv.cpp): GroupNorm + FiLM + SiLU in
// one pass each way, the layout changes and the nearest-neighbour resize. The loops are templates on the block B, so
// the lanes of a block are one vector; cloned per ISA and built with -ffp-contract=off, as fused.cpp.
//
// GroupNorm + FiLM + SiLU for image n, channel c in group g (M = channels per group x H x W elements):
//   mu_g, var_g over the group (double), r_g = 1 / sqrt(var_g + eps), f = 1 + scale[n, c],
//   u = x A_c + C_c  with  A_c = r_g gamma_c f,  C_c = (beta_c - mu_g r_g gamma_c) f + shift[n, c],   y = u sigmoid(u).
// Backward, from du = dy silu'(u) and the per-channel sums S1_c = sum du, S2_c = sum du x:
//   sum du xhat = r_g (S2_c - mu_g S1_c) =: D_c,  dgamma_c += D_c f,  dbeta_c += S1_c f,
//   dscale[n, c] = D_c gamma_c + S1_c beta_c,  dshift[n, c] = S1_c,
//   dx = r_g (du G_c - m1_g - xhat m2_g)  with  G_c = gamma_c f,  m1_g = sum_g G_c S1_c / M,  m2_g = sum_g G_c D_c / M,
//   i.e. dx = du P_c + x Q_g + R_g.
#include "flowlab/detail/blocked.hpp"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include <cmath>
#include <vector>

#include "exp_approx.hpp"
#include "flowlab/detail/cpu_clones.hpp"
#include "flowlab/errors.hpp"
#include "flowlab/fused.hpp"
#include "flowlab/objective.hpp"

namespace flowlab {
namespace {

using detail::exp_approx;
using detail::ExpRange;

thread_local bool plain_layout_forced = false;

// Sums over the positions of one image's channel blocks: s[c] = sum x, q[c] = sum x^2, in double, lane by lane.
template <int B>
FLOWLAB_INLINE void moments(const float* __restrict x, double* __restrict s, double* __restrict q, int64_t blocks,
                            int64_t hw) {
  for (int64_t k = 0; k < blocks; ++k) {
    double ls[B] = {}, lq[B] = {};
    const float* xk = x + k * hw * B;
    for (int64_t i = 0; i < hw; ++i)
      for (int l = 0; l < B; ++l) {
        const double v = xk[i * B + l];
        ls[l] += v;
        lq[l] += v * v;
      }
    for (int l = 0; l < B; ++l) s[k * B + l] = ls[l], q[k * B + l] = lq[l];
  }
}

// y = silu(x A + C), A and C per channel.
template <int B>
FLOWLAB_INLINE void affine_silu(const float* __restrict x, const float* __restrict a, const float* __restrict c,
                                float* __restrict y, int64_t blocks, int64_t hw, ExpRange range) {
  for (int64_t k = 0; k < blocks; ++k) {
    const float* ak = a + k * B;
    const float* ck = c + k * B;
    for (int64_t i = 0; i < hw; ++i)
      for (int l = 0; l < B; ++l) {
        const int64_t e = (k * hw + i) * B + l;
        const float u = x[e] * ak[l] + ck[l];
        y[e] = u / (1.0f + exp_approx(-u, range));
      }
  }
}

// du = dy silu'(x A + C), with S1 = sum du and S2 = sum du x per channel (double).
template <int B>
FLOWLAB_INLINE void silu_grad_sums(const float* __restrict dy, const float* __restrict x, const float* __restrict a,
                                   const float* __restrict c, float* __restrict du, double* __restrict s1,
                                   double* __restrict s2, int64_t blocks, int64_t hw, ExpRange range) {
  for (int64_t k = 0; k < blocks; ++k) {
    const float* ak = a + k * B;
    const float* ck = c + k * B;
    double l1[B] = {}, l2[B] = {};
    for (int64_t i = 0; i < hw; ++i)
      for (int l = 0; l < B; ++l) {
        const int64_t e = (k * hw + i) * B + l;
        const float u = x[e] * ak[l] + ck[l];
        const float s = 1.0f / (1.0f + exp_approx(-u, range));
        const float d = dy[e] * (s + u * s * (1.0f - s));
        du[e] = d;
        l1[l] += double(d);
        l2[l] += double(d) * double(x[e]);
      }
    for (int l = 0; l < B; ++l) s1[k * B + l] = l1[l], s2[k * B + l] = l2[l];
  }
}

// dx = du P + x Q + R, per channel.
template <int B>
FLOWLAB_INLINE void input_grad(const float* __restrict du, const float* __restrict x, const float* __restrict p,
                               const float* __restrict q, const float* __restrict r, float* __restrict dx,
                               int64_t blocks, int64_t hw) {
  for (int64_t k = 0; k < blocks; ++k)
    for (int64_t i = 0; i < hw; ++i)
      for (int l = 0; l < B; ++l) {
        const int64_t e = (k * hw + i) * B + l;
        dx[e] = du[e] * p[k * B + l] + x[e] * q[k * B + l] + r[k * B + l];
      }
}

#define FLOWLAB_BLOCKED_KERNELS(B)                                                                                 \
  FLOWLAB_CPU_CLONES void moments##B(const float* x, double* s, double* q, int64_t blocks, int64_t hw) {           \
    moments<B>(x, s, q, blocks, hw);                                                                               \
  }                                                                                                                \
  FLOWLAB_CPU_CLONES void affine_silu##B(const float* x, const float* a, const float* c, float* y, int64_t blocks, \
                                         int64_t hw, ExpRange range) {                                             \
    affine_silu<B>(x, a, c, y, blocks, hw, range);                                                                 \
  }                                                                                                                \
  FLOWLAB_CPU_CLONES void silu_grad_sums##B(const float* dy, const float* x, const float* a, const float* c,       \
                                            float* du, double* s1, double* s2, int64_t blocks, int64_t hw,         \
                                            ExpRange range) {                                                      \
    silu_grad_sums<B>(dy, x, a, c, du, s1, s2, blocks, hw, range);                                                 \
  }                                                                                                                \
  FLOWLAB_CPU_CLONES void input_grad##B(const float* du, const float* x, const float* p, const float* q,           \
                                        const float* r, float* dx, int64_t blocks, int64_t hw) {                   \
    input_grad<B>(du, x, p, q, r, dx, blocks, hw);                                                                 \
  }
FLOWLAB_BLOCKED_KERNELS(8)
FLOWLAB_BLOCKED_KERNELS(16)

// The shapes of one call: x [N, C / B, H, W, B].
struct GnShape {
  int64_t n, blocks, block, hw, channels, groups, per_group;
};

GnShape gn_shape(const Tensor& x, int64_t groups) {
  const int64_t c = x.size(1) * x.size(4);
  return {x.size(0), x.size(1), x.size(4), x.size(2) * x.size(3), c, groups, c / groups};
}

// A and C of the forward, per channel, from the group statistics.
void affine_coefficients(const GnShape& s, const float* gamma, const float* beta, const float* scale,
                         const float* shift, const double* mean, const double* rstd, float* a, float* c) {
  for (int64_t ch = 0; ch < s.channels; ++ch) {
    const int64_t g = ch / s.per_group;
    const double f = scale ? 1.0 + double(scale[ch]) : 1.0;
    a[ch] = float(rstd[g] * double(gamma[ch]) * f);
    c[ch] = float((double(beta[ch]) - mean[g] * rstd[g] * double(gamma[ch])) * f + (shift ? double(shift[ch]) : 0.0));
  }
}

// Per image: the group statistics (mean, 1 / std) from x.
void group_statistics(const GnShape& s, const float* x, double eps, double* mean, double* rstd) {
  std::vector<double> sum(static_cast<size_t>(s.channels)), sq(sum.size());
  if (s.block == 16) moments16(x, sum.data(), sq.data(), s.blocks, s.hw);
  else moments8(x, sum.data(), sq.data(), s.blocks, s.hw);
  const double m = double(s.per_group * s.hw);
  for (int64_t g = 0; g < s.groups; ++g) {
    double t = 0, t2 = 0;
    for (int64_t ch = g * s.per_group; ch < (g + 1) * s.per_group; ++ch) t += sum[size_t(ch)], t2 += sq[size_t(ch)];
    const double mu = t / m, var = std::max(t2 / m - mu * mu, 0.0);
    mean[g] = mu;
    rstd[g] = 1.0 / std::sqrt(var + eps);
  }
}

class GroupNormSiluFn : public torch::autograd::Function<GroupNormSiluFn> {
 public:
  // scale and shift: [N, C] contiguous, or empty [0] tensors (no FiLM).
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        const Tensor& scale, const Tensor& shift, int64_t groups, double eps) {
    const GnShape s = gn_shape(x, groups);
    const bool film = scale.numel() > 0;
    Tensor y = at::empty_like(x);
    Tensor mean = at::empty({s.n, s.groups}, x.options().dtype(at::kDouble)), rstd = at::empty_like(mean);
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const int64_t image = s.channels * s.hw;
    at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> a(size_t(s.channels)), c(size_t(s.channels));
      for (int64_t i = begin; i < end; ++i) {
        double* mu = mean.data_ptr<double>() + i * s.groups;
        double* rs = rstd.data_ptr<double>() + i * s.groups;
        group_statistics(s, xp + i * image, eps, mu, rs);
        affine_coefficients(s, gamma.data_ptr<float>(), beta.data_ptr<float>(),
                            film ? scale.data_ptr<float>() + i * s.channels : nullptr,
                            film ? shift.data_ptr<float>() + i * s.channels : nullptr, mu, rs, a.data(), c.data());
        if (s.block == 16)
          affine_silu16(xp + i * image, a.data(), c.data(), yp + i * image, s.blocks, s.hw, ExpRange());
        else affine_silu8(xp + i * image, a.data(), c.data(), yp + i * image, s.blocks, s.hw, ExpRange());
      }
    });
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["mean"] = mean;
    ctx->saved_data["rstd"] = rstd;
    ctx->save_for_backward({x, gamma, beta, scale, shift});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &gamma = saved[1], &beta = saved[2], &scale = saved[3], &shift = saved[4];
    const Tensor mean = ctx->saved_data["mean"].toTensor(), rstd = ctx->saved_data["rstd"].toTensor();
    const GnShape s = gn_shape(x, ctx->saved_data["groups"].toInt());
    const bool film = scale.numel() > 0;
    const Tensor dy = grad_outputs[0].contiguous();
    Tensor dx = at::empty_like(x), du = at::empty_like(x);
    // Per image: dgamma, dbeta partials (summed over images afterwards, in order) and dscale, dshift.
    Tensor dgamma_n = at::empty({s.n, s.channels}, x.options().dtype(at::kDouble)), dbeta_n = at::empty_like(dgamma_n);
    Tensor dscale = film ? at::empty({s.n, s.channels}, x.options()) : Tensor();
    Tensor dshift = film ? at::empty({s.n, s.channels}, x.options()) : Tensor();
    const int64_t image = s.channels * s.hw;
    const float* gp = gamma.data_ptr<float>();
    const float* bp = beta.data_ptr<float>();
    at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
      const size_t nc = size_t(s.channels);
      std::vector<float> a(nc), c(nc), p(nc), q(nc), r(nc);
      std::vector<double> s1(nc), s2(nc), d(nc);
      for (int64_t i = begin; i < end; ++i) {
        const float* sc = film ? scale.data_ptr<float>() + i * s.channels : nullptr;
        const float* sh = film ? shift.data_ptr<float>() + i * s.channels : nullptr;
        const double* mu = mean.data_ptr<double>() + i * s.groups;
        const double* rs = rstd.data_ptr<double>() + i * s.groups;
        affine_coefficients(s, gp, bp, sc, sh, mu, rs, a.data(), c.data());  // as the forward made them
        const float* xi = x.data_ptr<float>() + i * image;
        float* dui = du.data_ptr<float>() + i * image;
        if (s.block == 16)
          silu_grad_sums16(dy.data_ptr<float>() + i * image, xi, a.data(), c.data(), dui, s1.data(), s2.data(),
                           s.blocks, s.hw, ExpRange());
        else
          silu_grad_sums8(dy.data_ptr<float>() + i * image, xi, a.data(), c.data(), dui, s1.data(), s2.data(), s.blocks,
                          s.hw, ExpRange());
        double* dg = dgamma_n.data_ptr<double>() + i * s.channels;
        double* db = dbeta_n.data_ptr<double>() + i * s.channels;
        for (int64_t ch = 0; ch < s.channels; ++ch) {
          const int64_t g = ch / s.per_group;
          const double f = sc ? 1.0 + double(sc[ch]) : 1.0;
          d[size_t(ch)] = rs[g] * (s2[size_t(ch)] - mu[g] * s1[size_t(ch)]);
          dg[ch] = d[size_t(ch)] * f;
          db[ch] = s1[size_t(ch)] * f;
          if (film) {
            dscale.data_ptr<float>()[i * s.channels + ch] =
                float(d[size_t(ch)] * double(gp[ch]) + s1[size_t(ch)] * double(bp[ch]));
            dshift.data_ptr<float>()[i * s.channels + ch] = float(s1[size_t(ch)]);
          }
        }
        const double m = double(s.per_group * s.hw);
        for (int64_t g = 0; g < s.groups; ++g) {
          double m1 = 0, m2 = 0;
          for (int64_t ch = g * s.per_group; ch < (g + 1) * s.per_group; ++ch) {
            const double gm = double(gp[ch]) * (sc ? 1.0 + double(sc[ch]) : 1.0);
            m1 += gm * s1[size_t(ch)];
            m2 += gm * d[size_t(ch)];
          }
          m1 /= m, m2 /= m;
          for (int64_t ch = g * s.per_group; ch < (g + 1) * s.per_group; ++ch) {
            const double gm = double(gp[ch]) * (sc ? 1.0 + double(sc[ch]) : 1.0);
            p[size_t(ch)] = float(rs[g] * gm);
            q[size_t(ch)] = float(-rs[g] * rs[g] * m2);
            r[size_t(ch)] = float(rs[g] * (mu[g] * rs[g] * m2 - m1));
          }
        }
        if (s.block == 16)
          input_grad16(dui, xi, p.data(), q.data(), r.data(), dx.data_ptr<float>() + i * image, s.blocks, s.hw);
        else input_grad8(dui, xi, p.data(), q.data(), r.data(), dx.data_ptr<float>() + i * image, s.blocks, s.hw);
      }
    });
    const Tensor dgamma = dgamma_n.sum(0).to(at::kFloat), dbeta = dbeta_n.sum(0).to(at::kFloat);
    return {dx, dgamma, dbeta, dscale, dshift, Tensor(), Tensor()};
  }
};

}  // namespace

bool blocked_layout_enabled() { return !plain_layout_forced && channel_block() > 0 && !aten_ops_only(); }

PlainLayoutGuard::PlainLayoutGuard() : previous_(plain_layout_forced) { plain_layout_forced = true; }
PlainLayoutGuard::~PlainLayoutGuard() { plain_layout_forced = previous_; }

Tensor to_blocked(const Tensor& x, int64_t block) {
  if (x.dim() != 4 || block <= 0 || x.size(1) % block != 0)
    throw Error(
        fmt::format("to_blocked: needs [N, C, H, W] with C a multiple of {}, got {}", block, shape_string(x.sizes())));
  return x.reshape({x.size(0), x.size(1) / block, block, x.size(2), x.size(3)}).permute({0, 1, 3, 4, 2}).contiguous();
}

Tensor from_blocked(const Tensor& xb) {
  if (xb.dim() != 5)
    throw Error(fmt::format("from_blocked: needs [N, C/B, H, W, B], got {}", shape_string(xb.sizes())));
  return xb.permute({0, 1, 4, 2, 3}).reshape({xb.size(0), xb.size(1) * xb.size(4), xb.size(2), xb.size(3)});
}

Tensor group_norm_silu_blocked(const Tensor& xb, int64_t groups, const Tensor& gamma, const Tensor& beta, double eps,
                               const Tensor& scale, const Tensor& shift) {
  const bool film = scale.defined() || shift.defined();
  const int64_t c = xb.dim() == 5 ? xb.size(1) * xb.size(4) : -1;
  const bool ok =
      xb.dim() == 5 && (xb.size(4) == 8 || xb.size(4) == 16) && xb.device().is_cpu() &&
      xb.scalar_type() == at::kFloat && groups > 0 && c % groups == 0 && gamma.numel() == c && beta.numel() == c &&
      (!film ||
       (scale.defined() && shift.defined() && scale.numel() == xb.size(0) * c && shift.numel() == scale.numel()));
  if (!ok)
    throw Error(fmt::format("group_norm_silu_blocked: needs CPU float32 x [N, C/B, H, W, B] (B 8 or 16), C divisible "
                            "by groups, gamma and beta [C], scale and shift [N, C] or none; got x {}, {} groups",
                            shape_string(xb.sizes()), groups));
  const Tensor empty = at::empty({0}, xb.options());
  return GroupNormSiluFn::apply(xb.contiguous(), gamma.contiguous(), beta.contiguous(),
                                film ? scale.reshape({xb.size(0), c}).contiguous() : empty,
                                film ? shift.reshape({xb.size(0), c}).contiguous() : empty, groups, eps);
}

Tensor upsample_nearest_blocked(const Tensor& xb, int64_t h, int64_t w) {
  // ATen's nearest index: the same size maps to itself, twice the size to i / 2, else floor(i * (in / out)) in float.
  auto index = [&](int64_t in, int64_t out) {
    std::vector<int64_t> idx(static_cast<size_t>(out));
    const float scale = float(in) / float(out);
    for (int64_t i = 0; i < out; ++i)
      idx[size_t(i)] = out == in ? i : out == 2 * in ? i >> 1 : std::min(int64_t(std::floor(float(i) * scale)), in - 1);
    return at::tensor(idx, at::TensorOptions().dtype(at::kLong));
  };
  return xb.index_select(2, index(xb.size(2), h)).index_select(3, index(xb.size(3), w));
}

}  // namespace flowlab
