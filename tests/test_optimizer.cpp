// The flat optimizer: AdamW step for step against torch::optim::AdamW, the gradient norm and clipping against
// float64 references, the EMA, and a save/load round trip that continues exactly.
#include <catch2/catch_test_macros.hpp>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <cmath>

#include "flowlab/optimizer.hpp"
#include "support.hpp"

namespace {

torch::nn::Sequential small_net() {
  return torch::nn::Sequential(torch::nn::Linear(3, 16), torch::nn::SiLU(), torch::nn::Linear(16, 16), torch::nn::SiLU(),
                               torch::nn::Linear(16, 2));
}

// A net with the same weights as `net`, in storage of its own.
torch::nn::Sequential copy_of(const torch::nn::Sequential& net) {
  auto other = small_net();
  at::NoGradGuard g;
  const auto src = net->parameters(), dst = other->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  return other;
}

at::Tensor loss_of(torch::nn::Sequential& net, int64_t step) {
  torch::manual_seed(1000 + static_cast<uint64_t>(step));
  const at::Tensor x = at::randn({32, 3}), y = at::randn({32, 2});
  return (net->forward(x) - y).pow(2).mean();
}

double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

}  // namespace

TEST_CASE("flat AdamW follows torch::optim::AdamW step for step", "[optimizer]") {
  for (const double weight_decay : {0.0, 0.05}) {
    torch::manual_seed(0);
    auto reference = small_net();
    auto flat_net = copy_of(reference);
    torch::optim::AdamW torch_opt(reference->parameters(),
                                  torch::optim::AdamWOptions(3e-3).betas({0.9, 0.99}).weight_decay(weight_decay));
    flowlab::FlatAdamW flat(flat_net->parameters(), {3e-3, 0.9, 0.99, 1e-8, weight_decay});
    // The parameters became views of one buffer, with their values.
    CHECK(max_diff(reference->parameters(), flat_net->parameters()) == 0);
    CHECK(flat.flat_parameters().numel() == 3 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2);
    for (int64_t step = 0; step < 100; ++step) {
      const double lr = 3e-3 * (1 - double(step) / 200);
      for (auto& g : torch_opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      flat.set_lr(lr);
      torch_opt.zero_grad();
      loss_of(reference, step).backward();
      torch_opt.step();
      flat.zero_grad();
      loss_of(flat_net, step).backward();
      flat.step();
    }
    CHECK(flat.steps() == 100);
    INFO("weight decay " << weight_decay);
    CHECK(max_diff(reference->parameters(), flat_net->parameters()) < 1e-6);
  }
}

TEST_CASE("the flat gradient norm equals the float64 norm; clipping scales as clip_grad_norm_", "[optimizer]") {
  torch::manual_seed(1);
  auto net = small_net();
  auto reference = copy_of(net);
  flowlab::FlatAdamW flat(net->parameters(), {});
  flat.zero_grad();
  (loss_of(net, 0) * 100).backward();  // a norm well above 1, so clipping acts
  (loss_of(reference, 0) * 100).backward();
  double sq = 0;
  for (const auto& p : reference->parameters()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double expected = std::sqrt(sq);
  REQUIRE(expected > 2);
  CHECK(std::abs(flat.clip_grad_norm(0) - expected) <= 1e-6 * expected);  // 0: no clipping
  CHECK(std::abs(flat.clip_grad_norm(1.0) - expected) <= 1e-6 * expected);
  const double torch_norm = torch::nn::utils::clip_grad_norm_(reference->parameters(), 1.0);
  CHECK(std::abs(torch_norm - expected) <= 1e-5 * expected);
  std::vector<at::Tensor> g_flat, g_ref;
  for (const auto& p : net->parameters()) g_flat.push_back(p.grad());
  for (const auto& p : reference->parameters()) g_ref.push_back(p.grad());
  CHECK(max_diff(g_flat, g_ref) < 1e-6);
  CHECK(std::abs(flat.clip_grad_norm(0) - 1.0) < 1e-5);  // after clipping: norm 1
}

TEST_CASE("the EMA in the optimizer's pass equals ema = d ema + (1 - d) p", "[optimizer]") {
  torch::manual_seed(2);
  auto net = small_net();
  flowlab::FlatAdamW opt(net->parameters(), {1e-2, 0.9, 0.999, 1e-8, 0.0});
  flowlab::FlatEma ema(opt.flat_parameters());
  at::Tensor expected = opt.flat_parameters().clone();
  for (int64_t step = 0; step < 20; ++step) {
    opt.zero_grad();
    loss_of(net, step).backward();
    const double d = 0.9 - 0.01 * double(step);
    opt.step(&ema, d);
    expected = expected * d + opt.flat_parameters() * (1 - d);
  }
  CHECK((ema.flat() - expected).abs().max().item<double>() < 1e-6);
  opt.assign(ema.flat());
  std::vector<at::Tensor> flat_views;
  for (const auto& p : net->parameters()) flat_views.push_back(p.reshape({-1}));
  CHECK((at::cat(flat_views) - ema.flat()).abs().max().item<double>() == 0);
}

TEST_CASE("flat optimizer state saved and loaded with the model continues exactly", "[optimizer]") {
  const flowlab::test::ScratchDir dir("flowlab_optimizer");
  torch::manual_seed(3);
  auto net = small_net();
  auto twin = copy_of(net);
  flowlab::FlatAdamW opt(net->parameters(), {1e-2, 0.9, 0.999, 1e-8, 0.01});
  flowlab::FlatEma ema(opt.flat_parameters());
  auto train = [](torch::nn::Sequential& n, flowlab::FlatAdamW& o, flowlab::FlatEma& e, int64_t from, int64_t to) {
    for (int64_t step = from; step < to; ++step) {
      o.zero_grad();
      loss_of(n, step).backward();
      o.clip_grad_norm(0.5);
      o.step(&e, 0.9);
    }
  };
  train(net, opt, ema, 0, 10);
  {
    torch::serialize::OutputArchive archive, model, state;
    net->save(model);
    opt.save(state);
    archive.write("model", model);
    archive.write("optimizer", state);
    ema.save(archive);
    archive.save_to(dir.file("ckpt"));
  }
  train(net, opt, ema, 10, 20);

  flowlab::FlatAdamW opt2(twin->parameters(), {1e-2, 0.9, 0.999, 1e-8, 0.01});
  flowlab::FlatEma ema2(opt2.flat_parameters());
  {
    torch::serialize::InputArchive archive, model, state;
    archive.load_from(dir.file("ckpt"));
    archive.read("model", model);
    archive.read("optimizer", state);
    twin->load(model);  // replaces the parameters' storage ...
    opt2.load(state);   // ... and this puts them back into the flat buffer
    ema2.load(archive);
  }
  CHECK(opt2.steps() == 10);
  train(twin, opt2, ema2, 10, 20);
  CHECK(max_diff(net->parameters(), twin->parameters()) == 0);
  CHECK((ema.flat() - ema2.flat()).abs().max().item<double>() == 0);
}

TEST_CASE("a checkpoint without flat optimizer state is refused with a message", "[optimizer][errors]") {
  const flowlab::test::ScratchDir dir("flowlab_optimizer_old");
  auto net = small_net();
  torch::optim::AdamW old(net->parameters(), torch::optim::AdamWOptions(1e-3));
  torch::serialize::OutputArchive out;
  old.save(out);
  out.save_to(dir.file("old"));
  flowlab::FlatAdamW opt(net->parameters(), {});
  torch::serialize::InputArchive in;
  in.load_from(dir.file("old"));
  CHECK(flowlab::test::message_of<flowlab::Error>([&] { opt.load(in); }).find("no flat AdamW state") != std::string::npos);
}
