// train.precision (fp32, bf16 autocast, tf32), eval.cuda_graph, pinned copies, and what the build says it is.
// The [cuda] cases skip where no GPU is visible; everything else runs on CPU with either LibTorch.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/detail/blocked.hpp"
#include "flowlab/build_info.hpp"
#include "flowlab/config.hpp"
#include "flowlab/dataset.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/precision.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using flowlab::test::attr;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

// A small MLP on the ring, sampled with Euler 8 from 1500 points (more than the MLP's blocked evaluation takes at once); `extra` goes into the train and eval sections.
flowlab::Experiment precision_experiment(const std::string& tag, const std::string& train_extra,
                                         const std::string& eval_extra, const std::string& devices = "[cpu]") {
  const fs::path dir = flowlab::test::scratch_dir("flowlab_precision_" + tag + "_");
  std::ofstream(dir / "exp.yaml") << "name: precision\ndevices: " << devices << R"(
data: {dataset: ring_gaussians, params: {modes: 4, radius: 4.0, std: 0.2}}
model: {architecture: {name: mlp, params: {width: 64, depth: 2}}}
train: {steps: 150, batch_size: 128, lr: 3.0e-3, log_every: 1)" << train_extra << R"(}
eval: {samples: 1500, solvers: [{solver: euler, steps: [8]}], metrics: [frechet])" << eval_extra << "}\n";
  return flowlab::load_experiment((dir / "exp.yaml").string(), registry());
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

double median_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = std::abs(double(a[i]) - double(b[i]));
  std::nth_element(d.begin(), d.begin() + long(d.size() / 2), d.end());
  return d[d.size() / 2];
}

}  // namespace

TEST_CASE("the build's fast paths are on exactly where CMake was asked for them", "[build]") {
  const flowlab::BuildInfo b = flowlab::build_info();
  INFO(flowlab::build_info_line());
  CHECK(b.torch_version == TORCH_VERSION);
  CHECK(b.cuda_build == bool(FLOWLAB_EXPECT_CUDA));
  CHECK(b.blocked_conv == bool(FLOWLAB_EXPECT_DNNL));  // FLOWLAB_WITH_DNNL on, but no oneDNN 2.x found: fails here
  CHECK(b.blas_sgemm == bool(FLOWLAB_EXPECT_BLAS));
  CHECK((flowlab::channel_block() > 0) == b.blocked_conv);  // and the U-Net's blocked path follows it
}

TEST_CASE("the MLP trains through its fused op on CPU float32 and through ATen under bf16 autocast", "[build][precision]") {
  // The fused path (mlp_layers, one autograd node) must not be silently off where it applies, nor on where it
  // would compute in float32 under autocast.
  auto mlp = registry().create<flowlab::Architecture>("architecture", "mlp");
  mlp->build({{2}, 0, 0});
  const at::Tensor x = at::randn({64, 2}), t = at::rand({64});
  const at::Tensor plain = mlp->forward(x, t);
  REQUIRE(plain.grad_fn());
  CHECK_THAT(plain.grad_fn()->name(), Catch::Matchers::ContainsSubstring("MlpLayersFn"));
  CHECK(plain.scalar_type() == at::kFloat);
  at::Tensor cast;
  {
    const flowlab::PrecisionScope bf16("bf16", at::Device("cpu"));
    cast = mlp->forward(x, t);
  }
  REQUIRE(cast.grad_fn());
  CHECK_THAT(cast.grad_fn()->name(), !Catch::Matchers::ContainsSubstring("MlpLayersFn"));
  CHECK(cast.scalar_type() == at::kBFloat16);
  CHECK((cast.to(at::kFloat) - plain).abs().max().item<double>() < 0.05);  // bf16's rounding, no more
}

TEST_CASE("train.precision: the three values, their validation, and what applies where", "[precision]") {
  CHECK(flowlab::precisions() == std::vector<std::string>{"fp32", "bf16", "tf32"});
  CHECK(flowlab::applied_precision("fp32", at::Device("cpu")) == "fp32");
  CHECK(flowlab::applied_precision("bf16", at::Device("cpu")) == "bf16");
  CHECK(flowlab::applied_precision("tf32", at::Device("cpu")) == "fp32");  // a CUDA flag: fp32 is what runs
  CHECK(flowlab::applied_precision("tf32", at::Device("cuda:0")) == "tf32");
  // The default stays out of the resolved configuration (earlier results keep their hashes); others are in it.
  const auto fp32 = precision_experiment("default", "", "");
  CHECK(fp32.trials.at(0).train.precision == "fp32");
  CHECK(fp32.trials.at(0).resolved_yaml.find("precision") == std::string::npos);
  const auto bf16 = precision_experiment("bf16", ", precision: bf16", "");
  CHECK(bf16.trials.at(0).resolved_yaml.find("precision: bf16") != std::string::npos);
}

TEST_CASE("bf16 autocast on CPU: loss and samples within a stated tolerance of fp32", "[precision]") {
  const auto fp32 = flowlab::run_trial(precision_experiment("a", "", "").trials.at(0), registry(), "cpu");
  const auto bf16 = flowlab::run_trial(precision_experiment("b", ", precision: bf16", "").trials.at(0), registry(), "cpu");
  REQUIRE(fp32.status == "completed");
  REQUIRE(bf16.status == "completed");
  CHECK(fp32.precision == "fp32");
  CHECK(bf16.precision == "bf16");
  // The same batches and initial weights: the first loss differs only by bf16's rounding (8 bits of mantissa),
  // which proves autocast ran (the fused float32 MLP path would give the same bits).
  const double l0 = fp32.train.loss.at(0), b0 = bf16.train.loss.at(0);
  CHECK(b0 != l0);
  CHECK(std::abs(b0 - l0) <= 0.02 * l0);
  // Trained alike: the last 20 logged losses' means within 10%, and the samples from the same noise close.
  double lf = 0, bf = 0;
  for (size_t i = fp32.train.loss.size() - 20; i < fp32.train.loss.size(); ++i) lf += fp32.train.loss[i], bf += bf16.train.loss[i];
  CHECK(std::abs(bf - lf) <= 0.10 * lf);
  REQUIRE(fp32.eval.size() == 1);
  REQUIRE(bf16.eval.size() == 1);
  CHECK(fp32.eval[0].nfe == bf16.eval[0].nfe);
  CHECK(median_abs_diff(fp32.eval[0].samples.values, bf16.eval[0].samples.values) < 0.25);  // ring radius 4
}

TEST_CASE("train.precision lands in the results file: bf16 as bf16, tf32 on a CPU as fp32", "[precision][cli]") {
  const fs::path dir = flowlab::test::scratch_dir("flowlab_precision_cli_");
  std::ofstream(dir / "exp.yaml") << R"(name: precision_cli
devices: [cpu]
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 5, batch_size: 16}
eval: {samples: 16, solvers: [{solver: euler, steps: [2]}], metrics: []}
sweep: {grid: {train.precision: [fp32, bf16, tf32]}}
)";
  const std::string out = (dir / "out.h5").string();
  const auto r = flowlab::test::run_command("FLOWLAB_PLUGIN_PATH= " + std::string(FLOWLAB_CLI) + " run " +
                                            (dir / "exp.yaml").string() + " --out " + out);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(attr(out, "trials/precision=fp32,seed=0", "precision") == "fp32");
  CHECK(attr(out, "trials/precision=bf16,seed=0", "precision") == "bf16");
  CHECK(attr(out, "trials/precision=tf32,seed=0", "precision") == "fp32");
  CHECK(attr(out, "trials/precision=bf16,seed=0", "cuda_graph") == "off");
}

TEST_CASE("eval.cuda_graph: on devices: auto, a trial that lands on a CPU samples eagerly and records it", "[precision]") {
  const auto ex = precision_experiment("graph_auto", "", ", cuda_graph: true", "auto");
  const auto plain = precision_experiment("graph_off", "", "", "[cpu]");
  CHECK(ex.trials.at(0).resolved_yaml.find("cuda_graph: true") != std::string::npos);
  const auto g = flowlab::run_trial(ex.trials.at(0), registry(), "cpu");
  const auto e = flowlab::run_trial(plain.trials.at(0), registry(), "cpu");
  REQUIRE(g.status == "completed");
  CHECK(g.cuda_graph == "off");
  CHECK(g.eval.at(0).samples.values == e.eval.at(0).samples.values);
}

TEST_CASE("to_device: a plain copy on CPU; pinned and non-blocking to a GPU", "[precision][cuda]") {
  const at::Tensor x = at::randn({64, 3});
  CHECK(flowlab::to_device(x, at::TensorOptions().device(at::kCPU)).equal(x));
  if (torch::cuda::device_count() == 0) SKIP("no GPU is visible: the pinned copy to a GPU is not run");
  const at::Tensor y = flowlab::to_device(x, at::TensorOptions().device(at::Device("cuda:0")));
  CHECK(y.is_cuda());
  CHECK(y.cpu().equal(x));
}

TEST_CASE("on a GPU: CUDA graphs give the eager samples; bf16 and tf32 run and are recorded", "[precision][cuda]") {
  if (torch::cuda::device_count() == 0) SKIP("no GPU is visible: CUDA graphs, bf16 and tf32 on CUDA are not run");
  const auto eager = flowlab::run_trial(precision_experiment("c1", "", "", "auto").trials.at(0), registry(), "cuda:0");
  const auto graph = flowlab::run_trial(precision_experiment("c2", "", ", cuda_graph: true", "auto").trials.at(0),
                                        registry(), "cuda:0");
  REQUIRE(eager.status == "completed");
  REQUIRE(graph.status == "completed");
  CHECK(eager.cuda_graph == "off");
  CHECK(graph.cuda_graph == "on");
  REQUIRE(graph.eval.at(0).error.empty());
  CHECK(graph.eval.at(0).nfe == eager.eval.at(0).nfe);
  CHECK(graph.train.loss == eager.train.loss);
  CHECK(max_abs_diff(graph.eval.at(0).samples.values, eager.eval.at(0).samples.values) <= 1e-5);
  CHECK(std::abs(graph.eval.at(0).straightness - eager.eval.at(0).straightness) <= 1e-4 * (1 + eager.eval.at(0).straightness));

  const auto bf16 = flowlab::run_trial(precision_experiment("c3", ", precision: bf16", ", cuda_graph: true", "auto").trials.at(0),
                                       registry(), "cuda:0");
  REQUIRE(bf16.status == "completed");
  CHECK(bf16.precision == "bf16");
  CHECK(bf16.eval.at(0).error.empty());
  CHECK(std::abs(bf16.train.loss.at(0) - eager.train.loss.at(0)) <= 0.02 * eager.train.loss.at(0));
  CHECK(median_abs_diff(bf16.eval.at(0).samples.values, eager.eval.at(0).samples.values) < 0.25);
  const auto tf32 = flowlab::run_trial(precision_experiment("c4", ", precision: tf32", "", "auto").trials.at(0),
                                       registry(), "cuda:0");
  REQUIRE(tf32.status == "completed");
  CHECK(tf32.precision == "tf32");
  CHECK(std::abs(tf32.train.loss.at(0) - eager.train.loss.at(0)) <= 0.01 * eager.train.loss.at(0));
}
