// flowlab export: a traced TorchScript module of each built-in architecture equals the network at any batch, the
// few-step models' step method equals forward_step, and the command refuses what it cannot write with a clear error.
// The round trip in PyPI's torch (torch.jit.load and an Euler loop against the stored samples) is tests/check_export.sh.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/generators/catch_generators_range.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <torch/script.h>

#include <filesystem>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/torchscript.hpp"
#include "support.hpp"

using flowlab::Tensor;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

struct Case {
  std::string architecture;
  std::vector<int64_t> shape;
  bool step_input;
  flowlab::Params params;
  int64_t classes = 0;  ///< label-conditioned: forward(x, t, label)
  int64_t attr = 0;     ///< attribute-conditioned: forward(x, t[, label], attr, null)
};

std::vector<Case> cases() {
  return {
      {"mlp", {2}, false, flowlab::Params().set("width", int64_t{16}).set("depth", int64_t{2})},
      {"mlp", {1, 4, 4}, false, flowlab::Params().set("width", int64_t{16}).set("depth", int64_t{2}).set("time_embedding", std::string("mlp"))},
      {"mlp", {2}, true, flowlab::Params().set("width", int64_t{16}).set("depth", int64_t{2})},
      {"mlp", {2}, true, flowlab::Params().set("width", int64_t{16}).set("depth", int64_t{2}).set("time_embedding", std::string("raw"))},
      {"unet", {1, 8, 8}, false,
       flowlab::Params().set("channels", int64_t{8}).set("channel_mult", std::vector<int64_t>{1, 2})
           .set("time_dim", int64_t{16}).set("attention_resolutions", std::vector<int64_t>{4})},
      {"unet", {1, 8, 8}, true, flowlab::Params().set("channels", int64_t{8}).set("channel_mult", std::vector<int64_t>{1, 2})},
      {"dit", {1, 8, 8}, false, flowlab::Params().set("hidden", int64_t{16}).set("depth", int64_t{1}).set("heads", int64_t{2})},
      {"dit", {3, 4, 4}, true, flowlab::Params().set("hidden", int64_t{16}).set("depth", int64_t{1}).set("heads", int64_t{2})},
      {"mlp", {2}, false, flowlab::Params().set("width", int64_t{16}).set("depth", int64_t{2}), 3},
      {"unet", {1, 8, 8}, true, flowlab::Params().set("channels", int64_t{8}).set("channel_mult", std::vector<int64_t>{1, 2}), 2},
      {"dit", {1, 8, 8}, false, flowlab::Params().set("hidden", int64_t{16}).set("depth", int64_t{1}).set("heads", int64_t{2}), 4},
      {"mlp", {2}, false, flowlab::Params().set("width", int64_t{16}).set("depth", int64_t{2}), 0, 3},
      {"unet", {1, 8, 8}, false, flowlab::Params().set("channels", int64_t{8}).set("channel_mult", std::vector<int64_t>{1, 2}), 0, 2},
      {"dit", {1, 8, 8}, true, flowlab::Params().set("hidden", int64_t{16}).set("depth", int64_t{1}).set("heads", int64_t{2}), 3, 2},
  };
}

}  // namespace

TEST_CASE("an exported network equals the network at any batch, forward and step", "[export]") {
  const auto all = cases();
  const size_t k = GENERATE_COPY(Catch::Generators::range(size_t{0}, all.size()));
  const Case& c = all[k];
  INFO("architecture/" << c.architecture << " step_input " << c.step_input << " shape " << flowlab::shape_string(c.shape)
                        << " classes " << c.classes << " attr " << c.attr);
  torch::manual_seed(7);
  auto net = registry().create<flowlab::Architecture>("architecture", c.architecture, c.params);
  net->build({c.shape, c.classes, c.attr, c.step_input});
  {  // zero-initialised outputs (adaLN-Zero, the DiT's final layer) would make every check pass: random weights
    at::NoGradGuard no_grad;
    for (auto& w : net->parameters()) w.copy_(at::randn_like(w) * 0.2);
  }
  net->eval();
  flowlab::test::ScratchDir dir("flowlab_export");
  const std::string file = dir.file("field.pt");
  flowlab::export_torchscript(*net, c.shape, c.step_input, c.classes, c.attr, file);
  auto module = torch::jit::load(file);
  CHECK(module.find_method("step").has_value() == c.step_input);
  at::NoGradGuard no_grad;
  for (const int64_t b : {1, 3, 700}) {  // 700 rows: the MLP's row blocks run without autograd above 1024 only
    INFO("batch " << b);
    std::vector<int64_t> shape = {b};
    shape.insert(shape.end(), c.shape.begin(), c.shape.end());
    const Tensor x = at::randn(shape), t = at::rand({b});
    flowlab::Condition cond;
    std::vector<c10::IValue> in = {x, t};
    if (c.classes > 0) {  // every class and the null one (label = classes)
      cond.label = at::arange(b, at::kLong).remainder(c.classes + 1);
      in.push_back(cond.label);
    }
    if (c.attr > 0) {  // every third row with the null condition
      cond.attr = at::randn({b, c.attr});
      cond.drop = at::arange(b).remainder(3) == 0;
      in.push_back(cond.attr);
      in.push_back(cond.drop);
    }
    const Tensor want = net->forward(x, t, cond), got = module.forward(in).toTensor();
    REQUIRE(got.sizes() == want.sizes());
    CHECK((got - want).abs().max().item<double>() <= 1e-5 * (1 + want.abs().max().item<double>()));
    if (c.step_input) {
      const Tensor d = at::rand({b}) * (1 - t);
      std::vector<c10::IValue> step_in = {x, t, d};
      if (c.classes > 0) step_in.push_back(cond.label);
      if (c.attr > 0) step_in.push_back(cond.attr), step_in.push_back(cond.drop);
      const Tensor s = module.get_method("step")(step_in).toTensor();
      CHECK((s - net->forward_step(x, t, d, cond)).abs().max().item<double>() <= 1e-5 * (1 + s.abs().max().item<double>()));
    }
  }
}

TEST_CASE("flowlab export writes a loadable field and refuses what it cannot write", "[export][cli]") {
  flowlab::test::ScratchDir dir("flowlab_export_cli");
  std::ofstream(dir.file("exp.yaml")) << R"(name: export
output: )" << dir.file("r.h5") << R"(
devices: [cpu]
data: {dataset: moons}
model:
  architecture: {name: mlp, params: {width: 16, depth: 2}}
train: {steps: 20, batch_size: 64, lr: 1.0e-2}
eval:
  samples: 64
  store_samples: 8
  solvers: [{solver: euler, steps: [4]}]
reflow: {rounds: 1, pairs: 64, teacher_solver: {solver: euler, steps: 2}, train: {steps: 5}}
)";
  const auto run = flowlab::test::run_command(std::string(FLOWLAB_CLI) + " run " + dir.file("exp.yaml"));
  REQUIRE(run.status == 0);
  const std::string trial = "seed=0";
  auto r = flowlab::test::run_command(std::string(FLOWLAB_CLI) + " export " + dir.file("r.h5") + " --trial " + trial +
                                      " --out " + dir.file("field.pt"));
  CHECK(r.status == 0);
  CHECK(r.out == "wrote " + dir.file("field.pt") + ": forward(x, t) -> v for x [B, 2], t [B] (trial seed=0, architecture/mlp)\n");
  CHECK(torch::jit::load(dir.file("field.pt")).find_method("forward").has_value());
  r = flowlab::test::run_command(std::string(FLOWLAB_CLI) + " export " + dir.file("r.h5") + " --trial " + trial +
                                 " --round 0 --out " + dir.file("f0.pt"));
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: --round 0: the file stores the weights of trial seed=0's last stage only (round 1)\n");
  CHECK(!fs::exists(dir.file("f0.pt")));
  r = flowlab::test::run_command(std::string(FLOWLAB_CLI) + " export " + dir.file("r.h5") + " --trial nope --out " +
                                 dir.file("f1.pt"));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Catch::Matchers::ContainsSubstring("unknown trial 'nope'"));
}

TEST_CASE("architecture/torchscript: an exported network imported again is the same field, trains, and evaluates "
          "without training", "[export][torchscript]") {
  flowlab::test::ScratchDir dir("flowlab_import");
  torch::manual_seed(8);
  auto mlp = registry().create<flowlab::Architecture>("architecture", "mlp",
                                                      flowlab::Params().set("width", int64_t{32}).set("depth", int64_t{2}));
  mlp->build({{2}, 0, 0});
  mlp->eval();
  flowlab::export_torchscript(*mlp, {2}, false, 0, 0, dir.file("field.pt"));
  auto imported = registry().create<flowlab::Architecture>("architecture", "torchscript",
                                                           flowlab::Params().set("file", dir.file("field.pt")));
  imported->build({{2}, 0, 0});
  CHECK(imported->parameters().size() == mlp->parameters().size());  // the module's parameters are the network's
  {
    at::NoGradGuard no_grad;
    const Tensor x = at::randn({50, 2}), t = at::rand({50});
    CHECK((imported->forward(x, t) - mlp->forward(x, t)).abs().max().item<double>() < 1e-5);
    // A solver's t is one time broadcast to [B] (a stride-0 view): the module gets it as any [B] tensor.
    const Tensor shared = at::scalar_tensor(0.25).expand({50});
    CHECK((imported->forward(x, shared) - mlp->forward(x, shared)).abs().max().item<double>() < 1e-5);
  }
  // In a sweep: train.steps 0 evaluates the imported field as it is; 30 steps train its parameters.
  std::ofstream(dir.file("exp.yaml")) << "name: imported\ndevices: [cpu]\ndata: {dataset: moons}\n"
                                      << "model: {architecture: {name: torchscript, params: {file: " << dir.file("field.pt")
                                      << "}}}\ntrain: {steps: 0, batch_size: 64, lr: 1.0e-2, log_every: 1}\n"
                                      << "eval: {samples: 64, solvers: [{solver: euler, steps: [4]}]}\n"
                                      << "sweep: {grid: {train.steps: [0, 30]}}\n";
  const auto ex = flowlab::load_experiment(dir.file("exp.yaml"), registry());
  REQUIRE(ex.trials.size() == 2);
  const auto frozen = flowlab::run_trial(ex.trials[0], registry(), "cpu");
  REQUIRE(frozen.status == "completed");
  CHECK(frozen.train.loss.empty());
  REQUIRE(frozen.eval.size() == 1);
  CHECK(frozen.eval[0].nfe == 4);
  // The frozen trial's weights are the file's.
  size_t i = 0;
  for (const auto& p : mlp->named_parameters()) {
    INFO(p.key());
    const auto& w = frozen.weights.at(i++).second;
    CHECK(at::equal(at::tensor(w.values).reshape(w.shape), p.value().detach()));
  }
  const auto trained = flowlab::run_trial(ex.trials[1], registry(), "cpu");
  REQUIRE(trained.status == "completed");
  REQUIRE(trained.train.loss.size() == 30);
  CHECK(trained.train.loss.back() < trained.train.loss.front());
}

TEST_CASE("architecture/torchscript refuses a missing file, a file that is not TorchScript and a wrong forward",
          "[export][torchscript][errors]") {
  flowlab::test::ScratchDir dir("flowlab_import_bad");
  auto create = [&](const std::string& file) {
    return flowlab::test::message_of<flowlab::ParamError>([&] {
      registry().create<flowlab::Architecture>("architecture", "torchscript", flowlab::Params().set("file", file));
    });
  };
  CHECK(create(dir.file("none.pt")) ==
        "architecture/torchscript: parameter 'file' '" + dir.file("none.pt") + "' does not exist or is not a file");
  std::ofstream(dir.file("text.pt")) << "not a zip\n";
  CHECK_THAT(create(dir.file("text.pt")),
             Catch::Matchers::StartsWith("architecture/torchscript: parameter 'file' '" + dir.file("text.pt") +
                                         "' is not a TorchScript module: "));
  torch::jit::Module m("one_input");
  m.define("def forward(self, x):\n  return x\n");
  m.save(dir.file("one_input.pt"));
  CHECK(create(dir.file("one_input.pt")) ==
        "architecture/torchscript: parameter 'file' '" + dir.file("one_input.pt") +
            "': forward must be forward(x: Tensor, t: Tensor) -> Tensor, got forward(__torch__.one_input self, Tensor x) -> "
            "Tensor");
}
