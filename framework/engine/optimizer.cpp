// Flat-buffer AdamW, gradient norm and EMA (see optimizer.hpp). On CPU float32 each is one loop over the flat
// buffers, compiled for AVX-512, AVX2 and the baseline and chosen at load time; elsewhere (CUDA, other dtypes) the
// same arithmetic runs as ATen ops on the flat tensors. This file is built with -ffp-contract=off, so every clone
// rounds exactly as the baseline does (no fused multiply-add): the result does not depend on the CPU's features.
#include "flowlab/optimizer.hpp"
#include "flowlab/detail/cpu_clones.hpp"
#include "flowlab/fused.hpp"

#include <fmt/format.h>

#include <cmath>

namespace flowlab {
namespace {

// The scalars of one step, rounded to float as ATen rounds a double scalar for a float tensor.
struct AdamWScalars {
  bool weight_decay;
  float keep;  // 1 - lr wd
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_bias_correction2, eps, neg_step_size;
  float ema_decay, ema_one_minus_decay;
};

// torch::optim::AdamW, for one element, in its order of operations:
//   p *= 1 - lr wd;  m = m b1 + (1 - b1) g;  v = v b2 + (1 - b2) g g;
//   p += -(lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps);  then the EMA e = e d + (1 - d) p.
FLOWLAB_CPU_CLONES void adamw_loop(float* __restrict p, const float* __restrict g, float* __restrict m,
                                   float* __restrict v, float* __restrict e, int64_t n, AdamWScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    float w = p[i];
    if (s.weight_decay) w = w * s.keep;
    const float gi = g[i];
    const float mi = m[i] * s.beta1 + s.one_minus_beta1 * gi;
    const float vi = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / s.sqrt_bias_correction2 + s.eps;
    w = w + s.neg_step_size * mi / denom;
    p[i] = w;
    if (e) e[i] = e[i] * s.ema_decay + s.ema_one_minus_decay * w;
  }
}

// Sum of squares of float32 values in 16 double lanes (exact products, one rounding per add).
FLOWLAB_CPU_CLONES double sum_of_squares(const float* __restrict g, int64_t n) {
  constexpr int kLanes = 16;
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += double(g[i + j]) * double(g[i + j]);
  double total = 0;
  for (; i < n; ++i) total += double(g[i]) * double(g[i]);
  for (double x : lane) total += x;
  return total;
}

FLOWLAB_CPU_CLONES void ema_loop(float* __restrict e, const float* __restrict p, int64_t n, float decay,
                                 float one_minus_decay) {
  for (int64_t i = 0; i < n; ++i) e[i] = e[i] * decay + one_minus_decay * p[i];
}

bool fast_path(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

std::vector<int64_t> row_major_strides(at::IntArrayRef sizes) {
  std::vector<int64_t> strides(sizes.size());
  int64_t s = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    strides[i] = s;
    s *= std::max<int64_t>(sizes[i], 1);
  }
  return strides;
}

}  // namespace

FlatAdamW::FlatAdamW(const std::vector<at::Tensor>& parameters, FlatAdamWOptions options) : options_(options) {
  for (const auto& p : parameters)
    if (p.requires_grad()) params_.push_back(p);
  if (params_.empty()) throw Error("optimizer: the model has no parameters that require a gradient");
  int64_t total = 0;
  for (const auto& p : params_) {
    if (p.scalar_type() != params_[0].scalar_type() || p.device() != params_[0].device())
      throw Error(fmt::format("optimizer: all parameters must share one dtype and device, got {} on {} and {} on {}",
                              c10::toString(params_[0].scalar_type()), params_[0].device().str(),
                              c10::toString(p.scalar_type()), p.device().str()));
    offsets_.push_back(total);
    total += p.numel();
  }
  const auto opts = params_[0].options().requires_grad(false);
  flat_ = at::empty({total}, opts);
  grad_ = at::zeros({total}, opts);
  exp_avg_ = at::zeros({total}, opts);
  exp_avg_sq_ = at::zeros({total}, opts);
  relink();
}

void FlatAdamW::relink() {
  // The common case, every step: each parameter and gradient still where we put them (pointer compares only).
  bool linked = true;
  for (size_t i = 0; i < params_.size() && linked; ++i) {
    const at::Tensor& g = params_[i].grad();
    const int64_t bytes = offsets_[i] * int64_t(flat_.element_size());
    linked = params_[i].data_ptr() == static_cast<char*>(flat_.data_ptr()) + bytes && g.defined() &&
             g.data_ptr() == static_cast<char*>(grad_.data_ptr()) + bytes;
  }
  if (linked) return;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    const int64_t n = p.numel(), offset = offsets_[i];
    const int64_t next = i + 1 < params_.size() ? offsets_[i + 1] : flat_.numel();
    if (n != next - offset)
      throw Error(fmt::format("optimizer: parameter {} changed size from {} to {} elements", i, next - offset, n));
    const at::Tensor slot = flat_.narrow(0, offset, n);
    if (p.data_ptr() != slot.data_ptr() || !p.is_contiguous()) {
      slot.copy_(p.detach().reshape({-1}));
      p.set_(flat_.storage(), flat_.storage_offset() + offset, p.sizes(), row_major_strides(p.sizes()));
    }
    const at::Tensor gslot = grad_.narrow(0, offset, n);
    const at::Tensor& g = p.grad();
    if (!g.defined() || g.data_ptr() != gslot.data_ptr() || !g.is_contiguous()) {
      if (g.defined()) gslot.copy_(g.reshape({-1}));
      else gslot.zero_();
      p.mutable_grad() = gslot.view(p.sizes());
    }
  }
}

const at::Tensor& FlatAdamW::flat_parameters() {
  relink();
  return flat_;
}

void FlatAdamW::zero_grad() {
  relink();  // a gradient replaced by something else is put back first (copied, to be zeroed with the rest)
  grad_.zero_();
}

double FlatAdamW::clip_grad_norm(double max_norm) {
  relink();
  at::NoGradGuard no_grad;
  const double norm = fast_path(grad_) ? std::sqrt(sum_of_squares(grad_.data_ptr<float>(), grad_.numel()))
                                       : grad_.norm().item<double>();
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1) grad_.mul_(coef);
  }
  return norm;
}

void FlatAdamW::step(FlatEma* ema, double decay) {
  relink();
  at::NoGradGuard no_grad;
  ++step_;
  const auto& o = options_;
  const double bias_correction1 = 1 - std::pow(o.beta1, double(step_));
  const double bias_correction2 = 1 - std::pow(o.beta2, double(step_));
  const double step_size = o.lr / bias_correction1;
  if (ema && !ema->defined()) ema = nullptr;
  if (fast_path(flat_) && fast_path(grad_) && (!ema || fast_path(ema->flat()))) {
    AdamWScalars s;
    s.weight_decay = o.weight_decay != 0;
    s.keep = float(1 - o.lr * o.weight_decay);
    s.beta1 = float(o.beta1), s.one_minus_beta1 = float(1 - o.beta1);
    s.beta2 = float(o.beta2), s.one_minus_beta2 = float(1 - o.beta2);
    s.sqrt_bias_correction2 = float(std::sqrt(bias_correction2));
    s.eps = float(o.eps);
    s.neg_step_size = float(-step_size);
    s.ema_decay = float(decay), s.ema_one_minus_decay = float(1 - decay);
    adamw_loop(flat_.data_ptr<float>(), grad_.data_ptr<float>(), exp_avg_.data_ptr<float>(),
               exp_avg_sq_.data_ptr<float>(), ema ? ema->flat().data_ptr<float>() : nullptr, flat_.numel(), s);
    return;
  }
  if (o.weight_decay != 0) flat_.mul_(1 - o.lr * o.weight_decay);
  exp_avg_.mul_(o.beta1).add_(grad_, 1 - o.beta1);
  exp_avg_sq_.mul_(o.beta2).addcmul_(grad_, grad_, 1 - o.beta2);
  const at::Tensor denom = (exp_avg_sq_.sqrt() / std::sqrt(bias_correction2)).add_(o.eps);
  flat_.addcdiv_(exp_avg_, denom, -step_size);
  if (ema) ema->update(flat_, decay);
}

void FlatAdamW::assign(const at::Tensor& flat) {
  at::NoGradGuard no_grad;
  flat_parameters().copy_(flat);
}

void FlatAdamW::save(torch::serialize::OutputArchive& archive) const {
  archive.write("flat_adamw_step", at::tensor({step_}, at::kLong));
  archive.write("exp_avg", exp_avg_);
  archive.write("exp_avg_sq", exp_avg_sq_);
}

void FlatAdamW::load(torch::serialize::InputArchive& archive) {
  at::Tensor step, m, v;
  if (!archive.try_read("flat_adamw_step", step) || !archive.try_read("exp_avg", m) ||
      !archive.try_read("exp_avg_sq", v))
    throw Error("optimizer: the checkpoint has no flat AdamW state (a flowlab older than the flat optimizer wrote it); "
                "delete it to train this trial from the start");
  if (m.numel() != exp_avg_.numel() || v.numel() != exp_avg_sq_.numel())
    throw Error(
        fmt::format("optimizer: the checkpoint's state has {} values, the model {}", m.numel(), exp_avg_.numel()));
  at::NoGradGuard no_grad;
  step_ = step.item<int64_t>();
  exp_avg_.copy_(m);
  exp_avg_sq_.copy_(v);
  relink();
}

void FlatEma::update(const at::Tensor& flat, double decay) {
  at::NoGradGuard no_grad;
  if (fast_path(ema_) && fast_path(flat) && flat.numel() == ema_.numel()) {
    ema_loop(ema_.data_ptr<float>(), flat.data_ptr<float>(), ema_.numel(), float(decay), float(1 - decay));
    return;
  }
  ema_.mul_(decay).add_(flat, 1 - decay);
}

void FlatEma::save(torch::serialize::OutputArchive& archive) const { archive.write("ema", ema_); }

void FlatEma::load(torch::serialize::InputArchive& archive) {
  at::Tensor e;
  if (!archive.try_read("ema", e) || e.numel() != ema_.numel())
    throw Error("checkpoint: no flat EMA of the model's size (a flowlab older than the flat optimizer wrote it?); "
                "delete it to train this trial from the start");
  at::NoGradGuard no_grad;
  ema_.copy_(e);
}

}  // namespace flowlab
