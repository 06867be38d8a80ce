// The channel-blocked layout (blocked.hpp) against ATen: the layout round trip, oneDNN convolutions against
// at::conv2d, GroupNorm + FiLM + SiLU against ATen in double, the nearest resize against at::upsample_nearest2d
// (values and gradients), and the U-Net's blocked path against its ATen path. Where flowlab was built without oneDNN
// (channel_block() == 0) only the layout cases run.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "flowlab/architecture.hpp"
#include "flowlab/detail/blocked.hpp"
#include "support.hpp"

using flowlab::Tensor;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

// max |a - b| / max |b|: the error at the tensor's scale.
double scaled_error(const Tensor& a, const Tensor& b) {
  const Tensor d = b.detach().to(at::kDouble);
  return (a.detach().to(at::kDouble) - d).abs().max().item<double>() / (d.abs().max().item<double>() + 1e-300);
}

}  // namespace

TEST_CASE("to_blocked and from_blocked are inverse and place channel c at block c / B, lane c % B", "[blocked]") {
  const Tensor x = at::randn({2, 32, 3, 5});
  for (int64_t block : {8, 16}) {
    const Tensor xb = flowlab::to_blocked(x, block);
    REQUIRE(xb.sizes() == at::IntArrayRef({2, 32 / block, 3, 5, block}));
    CHECK(xb[1][1][2][4][3].item<float>() == x[1][block + 3][2][4].item<float>());
    CHECK(at::equal(flowlab::from_blocked(xb), x));
  }
  CHECK(message_of<flowlab::Error>([&] { flowlab::to_blocked(at::zeros({2, 12, 3, 3}), 8); }) ==
        "to_blocked: needs [N, C, H, W] with C a multiple of 8, got [2, 12, 3, 3]");
}

TEST_CASE("upsample_nearest_blocked equals at::upsample_nearest2d, values and gradients", "[blocked]") {
  const std::vector<std::array<int64_t, 4>> sizes = {{7, 7, 14, 14}, {14, 14, 28, 28}, {5, 3, 7, 8}, {4, 6, 4, 6}};
  for (const auto& [h, w, oh, ow] : sizes) {
    INFO(h << "x" << w << " -> " << oh << "x" << ow);
    const Tensor x = at::randn({2, 16, h, w}).requires_grad_();
    const Tensor g = at::randn({2, 16, oh, ow});
    const Tensor ref = at::upsample_nearest2d(x, {oh, ow});
    const Tensor out = flowlab::from_blocked(flowlab::upsample_nearest_blocked(flowlab::to_blocked(x, 8), oh, ow));
    CHECK(at::equal(out, ref));
    const Tensor gx = torch::autograd::grad({out}, {x}, {g})[0];
    const Tensor gx_ref = torch::autograd::grad({ref}, {x}, {g})[0];
    CHECK(scaled_error(gx, gx_ref) < 1e-6);
  }
}

TEST_CASE("conv2d_blocked equals at::conv2d, values and gradients", "[blocked]") {
  const int64_t block = flowlab::channel_block();
  if (block == 0) SKIP("built without oneDNN, or no JIT convolution on this CPU");
  struct Case {
    int64_t c, o, hw, k, stride, padding;
    bool plain_in, plain_out;
  };
  // The U-Net's kinds: 3x3 same-size, 3x3 stride 2 on an odd size, 1x1, a 1-channel input, a 1-channel output.
  const Case c = GENERATE(Case{32, 64, 14, 3, 1, 1, false, false}, Case{64, 64, 7, 3, 2, 1, false, false},
                          Case{64, 32, 9, 1, 1, 0, false, false}, Case{1, 32, 28, 3, 1, 1, true, false},
                          Case{32, 1, 12, 3, 1, 1, false, true});
  INFO(c.c << " -> " << c.o << " channels, " << c.hw << "x" << c.hw << ", kernel " << c.k << ", stride " << c.stride);
  torch::manual_seed(1);
  const Tensor x = at::randn({3, c.c, c.hw, c.hw}).requires_grad_();
  const Tensor w = (at::randn({c.o, c.c, c.k, c.k}) * 0.2).requires_grad_();
  const Tensor b = at::randn({c.o}).requires_grad_();
  const Tensor ref = at::conv2d(x, w, b, c.stride, c.padding);
  const Tensor g = at::randn(ref.sizes());
  const Tensor in = c.plain_in ? x : flowlab::to_blocked(x, block);
  const Tensor yb = flowlab::conv2d_blocked(in, w, b, c.stride, c.padding, c.plain_out);
  const Tensor y = c.plain_out ? yb : flowlab::from_blocked(yb);
  REQUIRE(y.sizes() == ref.sizes());
  CHECK(scaled_error(y, ref) < 1e-5);
  const auto grads = torch::autograd::grad({y}, {x, w, b}, {g});
  const auto grads_ref = torch::autograd::grad({ref}, {x, w, b}, {g});
  for (size_t i = 0; i < grads.size(); ++i) {
    INFO("gradient " << i);
    CHECK(scaled_error(grads[i], grads_ref[i]) < 1e-5);
  }
}

TEST_CASE("conv2d_blocked names what it needs", "[blocked]") {
  const int64_t block = flowlab::channel_block();
  if (block == 0) SKIP("built without oneDNN, or no JIT convolution on this CPU");
  const Tensor x = at::zeros({2, 32 / block, 5, 5, block});
  CHECK(message_of<flowlab::Error>([&] { flowlab::conv2d_blocked(x, at::zeros({20, 32, 3, 3}), at::zeros({20}), 1, 1); }) ==
        fmt::format("conv2d_blocked: needs CPU float32 x blocked [N, C/{0}, H, W, {0}] or plain [N, C, H, W], weight "
                    "[O, C, k, k], bias [O] with O a multiple of the block; got x [2, {1}, 5, 5, {0}], weight [20, 32, 3, 3]",
                    block, 32 / block));
  CHECK(message_of<flowlab::Error>([&] { flowlab::conv2d_blocked(x, at::zeros({16, 32, 3, 3}), at::zeros({16}), 0, 1); }) ==
        "conv2d_blocked: needs stride >= 1 and padding >= 0, got stride 0, padding 1");
}

TEST_CASE("group_norm_silu_blocked equals silu(GroupNorm(x) (1 + scale) + shift) in double", "[blocked]") {
  const int64_t block = GENERATE(int64_t{8}, int64_t{16});
  const bool film = GENERATE(false, true);
  const int64_t groups = GENERATE(int64_t{8}, int64_t{2});  // 4 or 16 channels per group: within or across blocks
  INFO("block " << block << (film ? ", FiLM" : "") << ", " << groups << " groups");
  torch::manual_seed(2);
  const int64_t n = 3, c = 32;
  // An offset mean and a spread that reaches silu's tails.
  const Tensor x = (at::randn({n, c, 6, 5}) * 3 + 1.5).requires_grad_();
  const Tensor gamma = (at::randn({c}) + 1).requires_grad_(), beta = at::randn({c}).requires_grad_();
  const Tensor scale = (at::randn({n, c}) * 0.5).requires_grad_(), shift = at::randn({n, c}).requires_grad_();
  const Tensor g = at::randn({n, c, 6, 5});
  const Tensor yb = film ? flowlab::group_norm_silu_blocked(flowlab::to_blocked(x, block), groups, gamma, beta, 1e-5,
                                                            scale, shift)
                         : flowlab::group_norm_silu_blocked(flowlab::to_blocked(x, block), groups, gamma, beta, 1e-5);
  const Tensor y = flowlab::from_blocked(yb);
  auto d = [](const Tensor& t) { return t.to(at::kDouble); };
  Tensor ref = at::group_norm(d(x), groups, d(gamma), d(beta), 1e-5);
  if (film) ref = ref * (1 + d(scale).reshape({n, c, 1, 1})) + d(shift).reshape({n, c, 1, 1});
  ref = at::silu(ref);
  CHECK(scaled_error(y, ref) < 1e-6);
  std::vector<Tensor> inputs = {x, gamma, beta};
  if (film) inputs.insert(inputs.end(), {scale, shift});
  const auto grads = torch::autograd::grad({y}, inputs, {g});
  const auto grads_ref = torch::autograd::grad({ref}, inputs, {d(g)});
  for (size_t i = 0; i < grads.size(); ++i) {
    INFO("gradient " << i);
    CHECK(scaled_error(grads[i], grads_ref[i]) < 1e-5);
  }
}

TEST_CASE("a U-Net whose first convolution's channels are not a multiple of the block takes the ATen path",
          "[blocked][architecture]") {
  if (!flowlab::blocked_layout_enabled()) SKIP("built without oneDNN, or no JIT convolution on this CPU");
  // channels 4, mult 4,8: the levels (16, 32) are multiples of 8 and 16, conv_in's 4 channels are not.
  flowlab::Params p;
  p.set("channels", std::int64_t{4}).set("channel_mult", std::string("4,8")).set("time_dim", std::int64_t{16});
  auto unet = registry().create<flowlab::Architecture>("architecture", "unet", p);
  unet->build({{1, 8, 8}, 0, 0});
  const Tensor x = at::randn({2, 1, 8, 8}), t = at::rand({2});
  const Tensor y = unet->forward(x, t, {});
  flowlab::PlainLayoutGuard plain;
  CHECK(at::equal(y, unet->forward(x, t, {})));
}

TEST_CASE("the U-Net's blocked path equals its ATen path, values and gradients", "[blocked][architecture]") {
  if (!flowlab::blocked_layout_enabled()) SKIP("built without oneDNN, or no JIT convolution on this CPU");
  // The default channel multipliers, 16 channels, attention at 7 and 14: every kind of layer in both layouts.
  flowlab::Params p;
  p.set("channels", std::int64_t{16}).set("time_dim", std::int64_t{32}).set("attention_resolutions", std::string("7,14"));
  torch::manual_seed(3);
  auto unet = registry().create<flowlab::Architecture>("architecture", "unet", p);
  unet->build({{1, 28, 28}, 0, 0});
  const Tensor x = at::randn({4, 1, 28, 28});
  const Tensor t = at::rand({4});
  const Tensor g = at::randn({4, 1, 28, 28});
  const auto params = unet->parameters();
  const Tensor y = unet->forward(x, t, {});
  const auto grads = torch::autograd::grad({y}, params, {g});
  Tensor y_ref;
  std::vector<Tensor> grads_ref;
  {
    flowlab::PlainLayoutGuard plain;
    CHECK_FALSE(flowlab::blocked_layout_enabled());
    y_ref = unet->forward(x, t, {});
    grads_ref = torch::autograd::grad({y_ref}, params, {g});
  }
  CHECK(flowlab::blocked_layout_enabled());
  CHECK(scaled_error(y, y_ref) < 1e-5);
  double worst = 0;
  for (size_t i = 0; i < grads.size(); ++i) worst = std::max(worst, scaled_error(grads[i], grads_ref[i]));
  CHECK(worst < 1e-4);
  {
    at::NoGradGuard no_grad;  // sampling's path
    CHECK(scaled_error(unet->forward(x, t, {}), y_ref) < 1e-5);
  }
  // Bit for bit the same again, on 1 and 2 threads (what resuming a trial relies on).
  const int threads = at::get_num_threads();
  for (int n : {1, 2}) {
    at::set_num_threads(n);
    const auto run = [&] {
      std::vector<Tensor> out = {unet->forward(x, t, {})};
      const auto gs = torch::autograd::grad({out[0]}, params, {g});
      out.insert(out.end(), gs.begin(), gs.end());
      return out;
    };
    const auto a = run(), b = run();
    for (size_t i = 0; i < a.size(); ++i) CHECK(at::equal(a[i], b[i]));
  }
  at::set_num_threads(threads);
}
