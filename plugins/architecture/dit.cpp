// Diffusion Transformer (Peebles & Xie 2023) for images [C, H, W]: patchify (a p x p stride-p convolution),
// learned position embeddings, transformer blocks with adaLN-Zero modulation from the time + condition
// embedding, a modulated final layer, unpatchify. The modulation and the final layer start at zero, so the
// network starts as v = 0 and each block as the identity. With a step input (few-step objectives), the step d gets
// an embedding of its own (the same sinusoidal features and a 2-layer MLP), added to t's, as MeanFlow's DiT adds its
// two time embeddings; forward(x, t) is then forward_step(x, t, 0).
// The sinusoidal time features run from pi to max_frequency (default 30 rad per unit t since 1.2.0; 1000, DDPM's
// range, before). Chosen by measurement (issue 25; sklearn's digits, patch 2, hidden 64, depth 3, 3000 steps,
// 3 seeds, benchmarks/time_features_dit_seeds.yaml): dopri5 at rtol = atol = 1e-5 takes 102 NFE (98-104) instead of
// 326 (290-356), and the converged feature Frechet (builtin:digits) is lower on every seed: 23.60 +- 0.17 against
// 26.31 +- 2.21 (Euler 10: 32.66 against 35.84).
#include <fmt/format.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

#include "flowlab/architecture.hpp"

namespace {

using flowlab::Tensor;
namespace nn = torch::nn;

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

class DitBlockImpl : public nn::Module {
 public:
  DitBlockImpl(int64_t hidden, int64_t heads, int64_t mlp_hidden)
      : heads_(heads),
        norm1_(register_module("norm1",
                               nn::LayerNorm(nn::LayerNormOptions({hidden}).elementwise_affine(false).eps(1e-6)))),
        qkv_(register_module("qkv", nn::Linear(hidden, 3 * hidden))),
        proj_(register_module("proj", nn::Linear(hidden, hidden))),
        norm2_(register_module("norm2",
                               nn::LayerNorm(nn::LayerNormOptions({hidden}).elementwise_affine(false).eps(1e-6)))),
        fc1_(register_module("fc1", nn::Linear(hidden, mlp_hidden))),
        fc2_(register_module("fc2", nn::Linear(mlp_hidden, hidden))),
        ada_(register_module("ada", nn::Linear(hidden, 6 * hidden))) {
    at::NoGradGuard no_grad;  // adaLN-Zero: every gate, shift and scale starts at zero
    ada_->weight.zero_();
    ada_->bias.zero_();
  }
  Tensor forward(const Tensor& x, const Tensor& c) {
    const auto m = ada_->forward(at::silu(c)).chunk(6, 1);  // shift, scale, gate for attention, then for the MLP
    const Tensor y = x + m[2].unsqueeze(1) * attention(modulate(norm1_->forward(x), m[0], m[1]));
    return y + m[5].unsqueeze(1) * fc2_->forward(at::gelu(fc1_->forward(modulate(norm2_->forward(y), m[3], m[4]))));
  }

 private:
  Tensor attention(const Tensor& x) {
    const int64_t b = x.size(0), n = x.size(1), d = x.size(2), hd = d / heads_;
    (void)b;  // -1 below: a TorchScript trace (flowlab export) then takes any batch
    const auto qkv = qkv_->forward(x).reshape({-1, n, 3, heads_, hd}).permute({2, 0, 3, 1, 4}).unbind(0);
    const Tensor attn = at::softmax(at::matmul(qkv[0], qkv[1].transpose(-2, -1)) / std::sqrt(double(hd)), -1);
    return proj_->forward(at::matmul(attn, qkv[2]).transpose(1, 2).reshape({-1, n, d}));
  }
  int64_t heads_;
  nn::LayerNorm norm1_;
  nn::Linear qkv_, proj_;
  nn::LayerNorm norm2_;
  nn::Linear fc1_, fc2_, ada_;
};
TORCH_MODULE(DitBlock);

/// Options of architecture/dit.
struct DitOptions {
  int64_t patch;         ///< patch size p; must divide H and W
  int64_t hidden;        ///< token width
  int64_t depth;         ///< transformer blocks
  int64_t heads;         ///< attention heads; must divide hidden
  double mlp_ratio;      ///< MLP width / hidden
  double max_frequency;  ///< highest frequency of the sinusoidal time features, radians per unit t
  explicit DitOptions(const flowlab::Params& p)
      : patch(p.integer("patch_size")),
        hidden(p.integer("hidden")),
        depth(p.integer("depth")),
        heads(p.integer("heads")),
        mlp_ratio(p.real("mlp_ratio")),
        max_frequency(p.real("max_frequency")) {
    for (const char* name : {"patch_size", "hidden", "depth", "heads"})
      if (p.integer(name) <= 0)
        throw flowlab::ParamError(p.owner(), name, fmt::format("must be > 0, got {}", p.integer(name)));
    if (hidden % heads != 0)
      throw flowlab::ParamError(p.owner(), "heads", fmt::format("must divide hidden ({}), got {}", hidden, heads));
    if (!(mlp_ratio > 0))
      throw flowlab::ParamError(p.owner(), "mlp_ratio", fmt::format("must be > 0, got {}", mlp_ratio));
    if (!(max_frequency >= M_PI))
      throw flowlab::ParamError(p.owner(), "max_frequency", fmt::format("must be >= pi, got {}", max_frequency));
  }
};

class DitArchitecture final : public flowlab::Architecture {
 public:
  explicit DitArchitecture(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}

  void build(const flowlab::ArchitectureSpec& spec) override {
    const auto& s = spec.event_shape;
    if (s.size() != 3)
      throw flowlab::Error(
          fmt::format("{}: needs images [C, H, W], got event shape {}", owner_, flowlab::shape_string(s)));
    if (s[1] % opt_.patch || s[2] % opt_.patch)
      throw flowlab::ParamError(owner_, "patch_size",
                                fmt::format("must divide the image size {}x{}, got {}", s[1], s[2], opt_.patch));
    c_ = s[0], gh_ = s[1] / opt_.patch, gw_ = s[2] / opt_.patch;
    const int64_t d = opt_.hidden;
    patchify_ = register_module("patchify", nn::Conv2d(nn::Conv2dOptions(c_, d, opt_.patch).stride(opt_.patch)));
    pos_ = register_parameter("pos", at::randn({1, gh_ * gw_, d}) * 0.02);
    time1_ = register_module("time1", nn::Linear(d, d));
    time2_ = register_module("time2", nn::Linear(d, d));
    if (spec.step_input) {
      step1_ = register_module("step1", nn::Linear(d, d));
      step2_ = register_module("step2", nn::Linear(d, d));
    }
    cond_ = register_module("cond", flowlab::ConditionEmbedder(spec.num_classes, spec.attr_dim, d));
    blocks_ = register_module("blocks", nn::ModuleList());
    for (int64_t i = 0; i < opt_.depth; ++i)
      blocks_->push_back(DitBlock(d, opt_.heads, static_cast<int64_t>(opt_.mlp_ratio * d)));
    norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({d}).elementwise_affine(false).eps(1e-6)));
    final_ada_ = register_module("final_ada", nn::Linear(d, 2 * d));
    final_ = register_module("final", nn::Linear(d, opt_.patch * opt_.patch * c_));
    at::NoGradGuard no_grad;
    for (auto* l : {&final_ada_, &final_}) (*l)->weight.zero_(), (*l)->bias.zero_();
  }

  bool has_step_input() const override { return true; }

  Tensor forward_step(const Tensor& x, const Tensor& t, const Tensor& d, const flowlab::Condition& cond) override {
    if (!step1_)
      throw flowlab::Error(fmt::format("{}: built without a step input (ArchitectureSpec::step_input)", owner_));
    return run(x, t, d, cond);
  }

  Tensor forward(const Tensor& x, const Tensor& t, const flowlab::Condition& cond) override {
    return run(x, t, step1_ ? at::zeros_like(t, x.options()) : Tensor(), cond);
  }

 private:
  Tensor run(const Tensor& x, const Tensor& t, const Tensor& d, const flowlab::Condition& cond) {
    const int64_t b = x.size(0), p = opt_.patch;
    Tensor h = patchify_->forward(x).flatten(2).transpose(1, 2) + pos_;  // [B, N, D]
    Tensor c = time2_->forward(
        at::silu(time1_->forward(flowlab::sinusoidal_embedding(t.to(x.dtype()), opt_.hidden, opt_.max_frequency))));
    if (d.defined())
      c = c + step2_->forward(at::silu(
                  step1_->forward(flowlab::sinusoidal_embedding(d.to(x.dtype()), opt_.hidden, opt_.max_frequency))));
    if (!cond_->empty()) c = c + cond_->forward(cond, b, x.options());
    for (const auto& block : *blocks_) h = block->as<DitBlock>()->forward(h, c);
    const auto m = final_ada_->forward(at::silu(c)).chunk(2, 1);
    h = final_->forward(modulate(norm_->forward(h), m[0], m[1]));  // [B, N, p*p*C]
    return h.reshape({-1, gh_, gw_, p, p, c_}).permute({0, 5, 1, 3, 2, 4}).reshape_as(x);
  }

  DitOptions opt_;
  std::string owner_;
  int64_t c_ = 0, gh_ = 0, gw_ = 0;
  nn::Conv2d patchify_{nullptr};
  Tensor pos_;
  nn::Linear time1_{nullptr}, time2_{nullptr}, step1_{nullptr}, step2_{nullptr}, final_ada_{nullptr}, final_{nullptr};
  flowlab::ConditionEmbedder cond_{nullptr};
  nn::ModuleList blocks_{nullptr};
  nn::LayerNorm norm_{nullptr};
};

}  // namespace

FLOWLAB_PLUGIN(
    architecture, dit, DitArchitecture, "1.2.0", "Diffusion Transformer with adaLN-Zero (Peebles & Xie 2023)",
    FLOWLAB_PARAM(patch_size, int, "2", "patch size p; must divide H and W")
        FLOWLAB_PARAM(hidden, int, "128", "token width") FLOWLAB_PARAM(depth, int, "4", "number of transformer blocks")
            FLOWLAB_PARAM(heads, int, "4", "attention heads; must divide hidden")
                FLOWLAB_PARAM(mlp_ratio, float, "4", "MLP width as a multiple of hidden")
                    FLOWLAB_PARAM(max_frequency, float, "30",
                                  "highest frequency of the sinusoidal time features (rad per unit t, >= pi)"))
