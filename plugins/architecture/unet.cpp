// U-Net for images [C, H, W] (Ho et al. 2020 layout): sinusoidal time embedding -> MLP; ResNet blocks with FiLM
// (scale and shift from the time + condition embedding); down and up paths with skip connections and channel
// multipliers; optional self-attention at chosen resolutions. Upsampling resizes to the skip's size, so odd
// sizes (28 -> 14 -> 7) work. On CPU (float32, oneDNN available, every level's channels a multiple of oneDNN's
// block) the activations stay in oneDNN's channel-blocked layout from the first convolution to the last
// (flowlab/blocked.hpp): the same function, without the reorders at::conv2d makes around each convolution.
// With a step input (few-step objectives), the step d gets an embedding of its own (the same sinusoidal features and
// MLP shape), added to t's; forward(x, t) is then forward_step(x, t, 0).
// The sinusoidal time features run from pi to max_frequency (default 30 rad per unit t since 1.2.0; 1000, DDPM's
// range, before). Chosen by measurement (issue 25; sklearn's digits, channels 32, 1000 steps, 3 seeds,
// benchmarks/time_features_digits_seeds.yaml): dopri5 at rtol = atol = 1e-5 takes 92 NFE (86-98) instead of 316
// (302-326); the converged feature Frechet (builtin:digits) is 7.16 +- 3.79 against 7.04 +- 3.40, per seed
// +4.9%, -9.6% and +5.7%, within the seeds' spread; Euler with 10 steps is better on every seed (10.64 against 11.21).
#include <fmt/format.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

#include <numeric>

#include "flowlab/architecture.hpp"
#include "flowlab/detail/blocked.hpp"
#include "flowlab/fused.hpp"

namespace {

using flowlab::Tensor;
namespace nn = torch::nn;

int64_t groups_for(int64_t channels) { return std::gcd(channels, int64_t{8}); }

// A convolution of the blocked path; stride and padding as the module was built with.
Tensor conv_blocked(const nn::Conv2dImpl& conv, const Tensor& x, int64_t stride, int64_t padding,
                    bool plain_out = false) {
  return flowlab::conv2d_blocked(x, conv.weight, conv.bias, stride, padding, plain_out);
}

// silu(norm(x) (1 + scale) + shift) on blocked x.
Tensor norm_silu_blocked(const nn::GroupNorm& norm, const Tensor& x, const Tensor& scale = {},
                         const Tensor& shift = {}) {
  return flowlab::group_norm_silu_blocked(x, norm->options.num_groups(), norm->weight, norm->bias, norm->options.eps(),
                                          scale, shift);
}

/// GroupNorm -> SiLU -> conv -> FiLM(emb) -> GroupNorm -> SiLU -> conv, plus a 1x1 skip when channels change.
class ResBlockImpl : public nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t emb_dim)
      : norm1_(register_module("norm1", nn::GroupNorm(groups_for(in), in))),
        conv1_(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)))),
        film_(register_module("film", nn::Linear(emb_dim, 2 * out))),
        norm2_(register_module("norm2", nn::GroupNorm(groups_for(out), out))),
        conv2_(register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1)))) {
    if (in != out) skip_ = register_module("skip", nn::Conv2d(nn::Conv2dOptions(in, out, 1)));
  }
  Tensor forward(const Tensor& x, const Tensor& emb, bool blocked = false) {
    const auto ss = film_->forward(at::silu(emb)).chunk(2, 1);
    if (blocked) {
      Tensor h = conv_blocked(*conv1_, norm_silu_blocked(norm1_, x), 1, 1);
      h = conv_blocked(*conv2_, norm_silu_blocked(norm2_, h, ss[0], ss[1]), 1, 1);
      return h + (skip_ ? conv_blocked(*skip_, x, 1, 0) : x);
    }
    Tensor h = conv1_->forward(flowlab::silu(norm1_->forward(x)));
    h = conv2_->forward(flowlab::film_silu(norm2_->forward(h), ss[0], ss[1]));  // silu(h (1 + scale) + shift)
    return h + (skip_ ? skip_->forward(x) : x);
  }

 private:
  nn::GroupNorm norm1_;
  nn::Conv2d conv1_;
  nn::Linear film_;
  nn::GroupNorm norm2_;
  nn::Conv2d conv2_;
  nn::Conv2d skip_{nullptr};
};
TORCH_MODULE(ResBlock);

/// Single-head self-attention over the H*W positions, with a residual connection.
class AttentionImpl : public nn::Module {
 public:
  explicit AttentionImpl(int64_t ch)
      : norm_(register_module("norm", nn::GroupNorm(groups_for(ch), ch))),
        qkv_(register_module("qkv", nn::Conv2d(nn::Conv2dOptions(ch, 3 * ch, 1)))),
        proj_(register_module("proj", nn::Conv2d(nn::Conv2dOptions(ch, ch, 1)))) {}
  Tensor forward(const Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    (void)b;  // -1 below: a TorchScript trace (flowlab export) then takes any batch
    const auto qkv = qkv_->forward(norm_->forward(x)).reshape({-1, 3, c, h * w}).unbind(1);
    const Tensor attn = at::softmax(at::matmul(qkv[0].transpose(1, 2), qkv[1]) / std::sqrt(double(c)), -1);
    const Tensor out = at::matmul(qkv[2], attn.transpose(1, 2)).reshape({-1, c, h, w});
    return x + proj_->forward(out);
  }

 private:
  nn::GroupNorm norm_;
  nn::Conv2d qkv_, proj_;
};
TORCH_MODULE(Attention);

/// Options of architecture/unet.
struct UnetOptions {
  int64_t channels;                ///< channels at the first level
  std::vector<int64_t> mult;       ///< channel multiplier per level; levels - 1 downsamplings
  int64_t res_blocks;              ///< ResNet blocks per level
  std::vector<int64_t> attention;  ///< resolutions (H) that get self-attention
  int64_t time_dim;                ///< width of the time/condition embedding
  double max_frequency;            ///< highest frequency of the sinusoidal time features, radians per unit t
  explicit UnetOptions(const flowlab::Params& p)
      : channels(p.integer("channels")),
        mult(p.int_list("channel_mult")),
        res_blocks(p.integer("res_blocks")),
        attention(p.int_list("attention_resolutions")),
        time_dim(p.integer("time_dim")),
        max_frequency(p.real("max_frequency")) {
    if (channels <= 0) throw flowlab::ParamError(p.owner(), "channels", fmt::format("must be > 0, got {}", channels));
    if (mult.empty()) throw flowlab::ParamError(p.owner(), "channel_mult", "must list at least one level");
    for (auto m : mult)
      if (m <= 0) throw flowlab::ParamError(p.owner(), "channel_mult", fmt::format("entries must be > 0, got {}", m));
    if (res_blocks <= 0)
      throw flowlab::ParamError(p.owner(), "res_blocks", fmt::format("must be > 0, got {}", res_blocks));
    if (time_dim <= 0) throw flowlab::ParamError(p.owner(), "time_dim", fmt::format("must be > 0, got {}", time_dim));
    if (!(max_frequency >= M_PI))
      throw flowlab::ParamError(p.owner(), "max_frequency", fmt::format("must be >= pi, got {}", max_frequency));
  }
};

class UnetArchitecture final : public flowlab::Architecture {
 public:
  explicit UnetArchitecture(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}

  void build(const flowlab::ArchitectureSpec& spec) override {
    if (spec.event_shape.size() != 3)
      throw flowlab::Error(fmt::format("{}: needs images [C, H, W], got event shape {}", owner_,
                                       flowlab::shape_string(spec.event_shape)));
    const int64_t in_ch = spec.event_shape[0];
    int64_t res = spec.event_shape[1];
    const int64_t levels = static_cast<int64_t>(opt_.mult.size());
    const int64_t e = opt_.time_dim;
    time_mlp1_ = register_module("time_mlp1", nn::Linear(e, 4 * e));
    time_mlp2_ = register_module("time_mlp2", nn::Linear(4 * e, e));
    if (spec.step_input) {
      step_mlp1_ = register_module("step_mlp1", nn::Linear(e, 4 * e));
      step_mlp2_ = register_module("step_mlp2", nn::Linear(4 * e, e));
    }
    cond_ = register_module("cond", flowlab::ConditionEmbedder(spec.num_classes, spec.attr_dim, e));
    conv_in_ = register_module("conv_in", nn::Conv2d(nn::Conv2dOptions(in_ch, opt_.channels, 3).padding(1)));
    down_ = register_module("down", nn::ModuleList());
    down_attn_ = register_module("down_attn", nn::ModuleList());
    downsample_ = register_module("downsample", nn::ModuleList());
    up_ = register_module("up", nn::ModuleList());
    up_attn_ = register_module("up_attn", nn::ModuleList());
    upsample_ = register_module("upsample", nn::ModuleList());
    auto wants_attn = [&](int64_t r) {
      return std::find(opt_.attention.begin(), opt_.attention.end(), r) != opt_.attention.end();
    };
    std::vector<int64_t> ch(levels), resolution(levels);
    int64_t prev = opt_.channels;
    for (int64_t i = 0; i < levels; ++i) {
      ch[i] = opt_.channels * opt_.mult[i];
      level_channels_.push_back(ch[i]);
      resolution[i] = res;
      for (int64_t r = 0; r < opt_.res_blocks; ++r, prev = ch[i]) {
        down_->push_back(ResBlock(prev, ch[i], e));
        down_attn_->push_back(wants_attn(res) ? std::static_pointer_cast<nn::Module>(Attention(ch[i]).ptr())
                                              : nullptr_module());
      }
      if (i + 1 < levels) {
        downsample_->push_back(nn::Conv2d(nn::Conv2dOptions(ch[i], ch[i], 3).stride(2).padding(1)));
        res = (res + 1) / 2;
      }
    }
    mid1_ = register_module("mid1", ResBlock(ch[levels - 1], ch[levels - 1], e));
    mid_attn_ = register_module("mid_attn", Attention(ch[levels - 1]));
    mid2_ = register_module("mid2", ResBlock(ch[levels - 1], ch[levels - 1], e));
    prev = ch[levels - 1];
    for (int64_t i = levels - 1; i >= 0; --i) {
      if (i + 1 < levels) {
        upsample_->push_back(nn::Conv2d(nn::Conv2dOptions(prev, ch[i], 3).padding(1)));
        prev = ch[i];
      }
      for (int64_t r = 0; r < opt_.res_blocks; ++r) {
        up_->push_back(ResBlock(r == 0 ? prev + ch[i] : ch[i], ch[i], e));
        up_attn_->push_back(wants_attn(resolution[i]) ? std::static_pointer_cast<nn::Module>(Attention(ch[i]).ptr())
                                                      : nullptr_module());
        prev = ch[i];
      }
    }
    norm_out_ = register_module("norm_out", nn::GroupNorm(groups_for(prev), prev));
    conv_out_ = register_module("conv_out", nn::Conv2d(nn::Conv2dOptions(prev, in_ch, 3).padding(1)));
    levels_ = levels;
  }

  bool has_step_input() const override { return true; }

  Tensor forward_step(const Tensor& x, const Tensor& t, const Tensor& d, const flowlab::Condition& cond) override {
    if (!step_mlp1_)
      throw flowlab::Error(fmt::format("{}: built without a step input (ArchitectureSpec::step_input)", owner_));
    return run(x, t, d, cond);
  }

  Tensor forward(const Tensor& x, const Tensor& t, const flowlab::Condition& cond) override {
    return run(x, t, step_mlp1_ ? at::zeros_like(t, x.options()) : Tensor(), cond);
  }

 private:
  Tensor run(const Tensor& x, const Tensor& t, const Tensor& d, const flowlab::Condition& cond) {
    const int64_t b = x.size(0);
    Tensor emb = time_mlp2_->forward(at::silu(
        time_mlp1_->forward(flowlab::sinusoidal_embedding(t.to(x.dtype()), opt_.time_dim, opt_.max_frequency))));
    if (d.defined())
      emb = emb + step_mlp2_->forward(at::silu(step_mlp1_->forward(
                      flowlab::sinusoidal_embedding(d.to(x.dtype()), opt_.time_dim, opt_.max_frequency))));
    if (!cond_->empty()) emb = emb + cond_->forward(cond, b, x.options());
    const int64_t block = blocked_block(x);
    const bool blocked = block > 0;
    // The convolutions, attention and resizing of either layout (the modules' strides and paddings as built).
    auto conv = [&](nn::Conv2dImpl& m, const Tensor& in, int64_t stride, int64_t padding) {
      return blocked ? conv_blocked(m, in, stride, padding) : m.forward(in);
    };
    auto attend = [&](AttentionImpl* a, const Tensor& in) {
      return blocked ? flowlab::to_blocked(a->forward(flowlab::from_blocked(in)), block) : a->forward(in);
    };
    Tensor h = conv(*conv_in_, x, 1, 1);
    std::vector<Tensor> skips;
    size_t block_index = 0;
    for (int64_t i = 0; i < levels_; ++i) {
      for (int64_t r = 0; r < opt_.res_blocks; ++r, ++block_index) {
        h = down_[block_index]->as<ResBlock>()->forward(h, emb, blocked);
        if (auto* a = down_attn_[block_index]->as<Attention>()) h = attend(a, h);
      }
      skips.push_back(h);
      if (i + 1 < levels_) h = conv(*downsample_[i]->as<nn::Conv2d>(), h, 2, 1);
    }
    h = mid2_->forward(attend(mid_attn_.get(), mid1_->forward(h, emb, blocked)), emb, blocked);
    block_index = 0;
    size_t up = 0;
    for (int64_t i = levels_ - 1; i >= 0; --i) {
      const Tensor& skip = skips[static_cast<size_t>(i)];
      if (i + 1 < levels_) {
        h = blocked ? flowlab::upsample_nearest_blocked(h, skip.size(2), skip.size(3))
                    : at::upsample_nearest2d(h, {skip.size(2), skip.size(3)});
        h = conv(*upsample_[up++]->as<nn::Conv2d>(), h, 1, 1);
      }
      for (int64_t r = 0; r < opt_.res_blocks; ++r, ++block_index) {
        if (r == 0) h = at::cat({h, skip}, 1);
        h = up_[block_index]->as<ResBlock>()->forward(h, emb, blocked);
        if (auto* a = up_attn_[block_index]->as<Attention>()) h = attend(a, h);
      }
    }
    if (blocked) return conv_blocked(*conv_out_, norm_silu_blocked(norm_out_, h), 1, 1, /*plain_out=*/true);
    return conv_out_->forward(flowlab::silu(norm_out_->forward(h)));
  }

  // An empty module where a block has no attention, so attention lists stay index-aligned with their blocks.
  static std::shared_ptr<nn::Module> nullptr_module() { return std::make_shared<nn::Module>(); }

  // oneDNN's channel block when x takes the blocked path (CPU float32 images, the first convolution's and every
  // level's channels a multiple of the block), else 0.
  int64_t blocked_block(const Tensor& x) const {
    if (!flowlab::blocked_layout_enabled() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 4)
      return 0;
    const int64_t block = flowlab::channel_block();
    if (opt_.channels % block != 0) return 0;  // conv_in's output
    for (int64_t c : level_channels_)
      if (c % block != 0) return 0;
    return block;
  }

  UnetOptions opt_;
  std::string owner_;
  int64_t levels_ = 0;
  std::vector<int64_t> level_channels_;
  nn::Linear time_mlp1_{nullptr}, time_mlp2_{nullptr}, step_mlp1_{nullptr}, step_mlp2_{nullptr};
  flowlab::ConditionEmbedder cond_{nullptr};
  nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  nn::GroupNorm norm_out_{nullptr};
  nn::ModuleList down_{nullptr}, down_attn_{nullptr}, downsample_{nullptr}, up_{nullptr}, up_attn_{nullptr},
      upsample_{nullptr};
  ResBlock mid1_{nullptr}, mid2_{nullptr};
  Attention mid_attn_{nullptr};
};

}  // namespace

FLOWLAB_PLUGIN(
    architecture, unet, UnetArchitecture, "1.2.0",
    "U-Net with FiLM ResNet blocks, skips, channel multipliers and optional self-attention",
    FLOWLAB_PARAM(channels, int, "32", "channels at the first level")
        FLOWLAB_PARAM(channel_mult, int_list, "1,2,2", "channel multiplier per level (levels - 1 downsamplings)")
            FLOWLAB_PARAM(res_blocks, int, "1", "ResNet blocks per level")
                FLOWLAB_PARAM(attention_resolutions, int_list, "", "resolutions (H) with self-attention, e.g. 7 or 14")
                    FLOWLAB_PARAM(time_dim, int, "128", "width of the time and condition embedding")
                        FLOWLAB_PARAM(max_frequency, float, "30",
                                      "highest frequency of the sinusoidal time features (rad per unit t, >= pi)"))
