// Couplings: minibatch OT recovers a known assignment and matches SciPy; Sinkhorn tends to it as epsilon -> 0 with
// uniform marginals; a coupled trial trains.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "flowlab/detail/assignment.hpp"
#include "flowlab/config.hpp"
#include "flowlab/coupling.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/transport.hpp"
#include "support.hpp"

using Catch::Approx;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

double pairing_cost(const at::Tensor& x0, const at::Tensor& x1, const flowlab::Pairing& p) {
  return (x0.index_select(0, p.i0) - x1.index_select(0, p.i1)).pow(2).sum().item<double>();
}

}  // namespace

TEST_CASE("minibatch_ot recovers a known assignment and never costs more than the independent pairing", "[coupling]") {
  torch::manual_seed(3);
  const at::Tensor x1 = at::randn({64, 2}, at::kDouble) * 3;
  const at::Tensor perm = at::randperm(64, at::kLong);
  // x0[i] is a slightly perturbed copy of x1[perm[i]]: the optimal pairing sends i to perm[i].
  const at::Tensor x0 = x1.index_select(0, perm) + 1e-3 * at::randn({64, 2}, at::kDouble);
  const auto ot = registry().create<flowlab::Coupling>("coupling", "minibatch_ot");
  const flowlab::Pairing p = ot->pair(x0.to(at::kFloat), x1.to(at::kFloat));
  CHECK(at::equal(p.i0, at::arange(64, at::kLong)));
  CHECK(at::equal(p.i1, perm));
  const auto independent = registry().create<flowlab::Coupling>("coupling", "independent");
  for (int seed = 0; seed < 5; ++seed) {
    torch::manual_seed(seed);
    const at::Tensor a = at::randn({32, 3}), b = at::randn({32, 3}) + 1;
    CHECK(pairing_cost(a, b, ot->pair(a, b)) <= pairing_cost(a, b, independent->pair(a, b)) + 1e-6);
  }
}

TEST_CASE("contract: a coupling that keeps_order() pairs (k, k); the others permute a batch", "[coupling]") {
  // The engine skips pair() for a coupling that keeps order, so one that claims it must return the identity.
  at::manual_seed(3);
  const at::Tensor x0 = at::randn({64, 2}), x1 = at::randn({64, 2}) + 4;
  const at::Tensor k = at::arange(64, at::kLong);
  std::vector<std::string> keeping;
  for (const auto& info : registry().list("coupling")) {
    const auto c = registry().create<flowlab::Coupling>("coupling", info.name);
    if (c->needs_teacher()) continue;  // pair() is never called
    const flowlab::Pairing p = c->pair(x0, x1);
    const bool identity = p.i0.equal(k) && p.i1.equal(k);
    INFO("coupling/" << info.name);
    CHECK(c->keeps_order() == identity);
    if (c->keeps_order()) keeping.push_back(info.name);
  }
  CHECK(keeping == std::vector<std::string>{"independent"});
}

TEST_CASE("minibatch_ot's total cost equals SciPy's linear_sum_assignment on 200 points", "[coupling]") {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/coupling_reference.csv");
  std::string line;
  std::getline(in, line);  // header
  std::vector<double> a, b;
  double expected = 0;
  std::vector<int64_t> expected_perm;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string f[4];
    for (auto& x : f) std::getline(ss, x, ',');
    if (f[0] == "cost") {
      expected = std::stod(f[1]);
      std::stringstream ps(f[2]);
      std::string c;
      while (std::getline(ps, c, ';')) expected_perm.push_back(std::stoll(c));
      break;
    }
    a.push_back(std::stod(f[0])), a.push_back(std::stod(f[1]));
    b.push_back(std::stod(f[2])), b.push_back(std::stod(f[3]));
  }
  REQUIRE(a.size() == 400);
  const at::Tensor x0 = at::tensor(a, at::kDouble).reshape({200, 2}), x1 = at::tensor(b, at::kDouble).reshape({200, 2});
  const auto ot = registry().create<flowlab::Coupling>("coupling", "minibatch_ot");
  const flowlab::Pairing p = ot->pair(x0, x1);
  CHECK(pairing_cost(x0, x1, p) == Approx(expected).epsilon(1e-12));
  CHECK(at::equal(p.i1, at::tensor(expected_perm, at::kLong)));  // the optimum is unique for points in general position
  CHECK(flowlab::exact_transport(flowlab::squared_euclidean_cost(x0, x1), "test").cost == Approx(expected / 200).epsilon(1e-12));
}

TEST_CASE("Sinkhorn tends to the exact plan as epsilon -> 0, with uniform marginals", "[coupling]") {
  torch::manual_seed(7);
  const at::Tensor x0 = at::randn({50, 2}, at::kDouble), x1 = at::randn({40, 2}, at::kDouble) * 2 + 1;
  at::Tensor cost = flowlab::squared_euclidean_cost(x0, x1);
  cost = cost / cost.max();
  const double exact = flowlab::exact_transport(cost, "test").cost;
  double previous_gap = 1e9;
  for (double eps : {0.3, 0.1, 0.03, 0.01, 0.003, 0.001}) {
    INFO("epsilon " << eps);
    const auto plan = flowlab::sinkhorn_transport(cost, eps, 1e-6, 100000, "test");
    const double gap = plan.cost - exact;
    CHECK(gap >= -1e-12);  // the exact plan is optimal
    CHECK(gap < previous_gap);
    previous_gap = gap;
    CHECK((plan.plan.sum(1) * 50 - 1).abs().max().item<double>() < 1e-6);
    CHECK((plan.plan.sum(0) * 40 - 1).abs().max().item<double>() < 1e-6);
  }
  CHECK(previous_gap < 0.01 * exact);
  CHECK(flowlab::test::message_of<flowlab::Error>([&] { flowlab::sinkhorn_transport(cost, 1e-4, 1e-6, 1, "coupling/sinkhorn"); })
            .rfind("coupling/sinkhorn: Sinkhorn did not converge in 1 iterations at epsilon = 0.0001 (largest row-sum error ", 0) == 0);
  // The coupling samples B pairs from its plan.
  const auto sk = registry().create<flowlab::Coupling>("coupling", "sinkhorn");
  const flowlab::Pairing p = sk->pair(x0.slice(0, 0, 40), x1);
  CHECK(p.i0.size(0) == 40);
  CHECK(p.i1.max().item<int64_t>() < 40);
}

TEST_CASE("a conditioned trial trains with each coupling", "[coupling][engine]") {
  const fs::path dir = fs::temp_directory_path() / ("flowlab_couplings_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "exp.yaml") << R"(name: couple
data: {dataset: ring_gaussians, params: {modes: 4}}
model:
  condition: label
  architecture: {name: mlp, params: {width: 16, depth: 1}}
train: {steps: 10, batch_size: 32}
eval: {samples: 50, solvers: [{solver: euler, steps: [2]}]}
sweep:
  grid: {model.coupling: [independent, minibatch_ot, sinkhorn]}
)";
  const auto ex = flowlab::load_experiment((dir / "exp.yaml").string(), registry());
  fs::remove_all(dir);
  REQUIRE(ex.trials.size() == 3);
  CHECK(ex.trials[1].resolved_yaml.find("name: minibatch_ot") != std::string::npos);
  for (const auto& t : ex.trials) {
    INFO(t.coupling.name);
    const auto r = flowlab::run_trial(t, registry(), "cpu");
    CHECK(r.status == "completed");
  }
}

TEST_CASE("minibatch_ot paired ahead on a helper thread trains bit for bit as paired on the training thread",
          "[coupling][engine]") {
  // Conditioned (labels follow their x1; p_uncond draws after the time), an EMA and clipping: every random draw of
  // a step and every use of the pairs.
  const fs::path dir = flowlab::test::scratch_dir("flowlab_pair_ahead_");
  std::ofstream(dir / "exp.yaml") << R"(name: ahead
data: {dataset: ring_gaussians, params: {modes: 4}}
model:
  condition: label
  noise: {dataset: eight_gaussians}
  coupling: minibatch_ot
  architecture: {name: mlp, params: {width: 32, depth: 2}}
train: {steps: 40, batch_size: 64, ema: 0.9, grad_clip: 1.0, p_uncond: 0.2, log_every: 1}
eval: {samples: 300, solvers: [{solver: euler, steps: [4]}], metrics: [energy]}
)";
  const auto ex = flowlab::load_experiment((dir / "exp.yaml").string(), registry());
  const auto& t = ex.trials.at(0);
  flowlab::set_pairing_ahead(false);
  const auto in_order = flowlab::run_trial(t, registry(), "cpu");
  flowlab::set_pairing_ahead(true);
  const auto ahead = flowlab::run_trial(t, registry(), "cpu");
  REQUIRE(in_order.status == "completed");
  REQUIRE(ahead.status == "completed");
  REQUIRE(ahead.train.loss.size() == 40);
  CHECK(ahead.train.loss == in_order.train.loss);  // exact equality
  CHECK(ahead.train.grad_norm == in_order.train.grad_norm);
  REQUIRE(ahead.eval.size() == 1);
  CHECK(ahead.eval[0].metrics == in_order.eval[0].metrics);  // and the random stream after training
  CHECK(ahead.x0.values == in_order.x0.values);

  // Killed after the checkpoint of step 20 (written when the batches of steps 20 and 21 were already drawn ahead,
  // the time of step 19 drawn between them), and stopped at step 25 (the checkpoint written then): each resumed run
  // ends as the uninterrupted one.
  auto ckpt_trial = t;
  ckpt_trial.train.checkpoint_every = 10;
  const std::string ckpt = (dir / "ahead.ckpt").string();
  CHECK_THROWS_AS(flowlab::run_trial(ckpt_trial, registry(), "cpu",
                                     [](const flowlab::Progress& p) {
                                       if (p.step == 25) throw std::runtime_error("killed");
                                     },
                                     ckpt),
                  std::runtime_error);
  // Resumed from the checkpoint left at `step`: the same losses and metrics as the uninterrupted run.
  const auto resume_matches = [&](int64_t step) {
    CHECK(flowlab::checkpoint_step(ckpt, ckpt_trial) == step);
    const auto resumed = flowlab::run_trial(ckpt_trial, registry(), "cpu", {}, ckpt);
    REQUIRE(resumed.status == "completed");
    CHECK(resumed.train.loss == in_order.train.loss);
    CHECK(resumed.eval[0].metrics == in_order.eval[0].metrics);
  };
  resume_matches(20);
  fs::remove(ckpt);
  int64_t asked = 0;
  CHECK_THROWS_AS(flowlab::run_trial(ckpt_trial, registry(), "cpu", {}, ckpt, [&] { return ++asked == 26; }),
                  flowlab::Interrupted);
  resume_matches(25);
  fs::remove_all(dir);
}

TEST_CASE("model.noise may name any dataset: 8 Gaussians to moons", "[coupling][noise]") {
  const fs::path dir = flowlab::test::scratch_dir("flowlab_noise_dataset_");
  std::ofstream(dir / "exp.yaml") << R"(name: source
data: {dataset: moons}
model:
  noise: {dataset: eight_gaussians, params: {scale: 3.0, std: 0.05}}
  architecture: {name: mlp, params: {width: 16, depth: 1}}
train: {steps: 10, batch_size: 32}
eval: {samples: 400, solvers: [{solver: euler, steps: [2]}]}
)";
  const auto ex = flowlab::load_experiment((dir / "exp.yaml").string(), registry());
  REQUIRE(ex.trials.size() == 1);
  const auto& t = ex.trials[0];
  CHECK(t.noise_dataset.name == "eight_gaussians");
  CHECK(t.resolved_yaml.find("noise:\n    dataset:\n      name: eight_gaussians") != std::string::npos);
  const auto r = flowlab::run_trial(t, registry(), "cpu");
  REQUIRE(r.status == "completed");
  // Every stored x0 lies on one of the eight centres at distance 3 (std 0.05).
  REQUIRE(r.x0.shape == std::vector<int64_t>{400, 2});
  for (size_t i = 0; i < 400; ++i) {
    const double radius = std::hypot(r.x0.values[2 * i], r.x0.values[2 * i + 1]);
    CHECK(std::abs(radius - 3.0) < 0.3);
  }
  // A base distribution of another shape is refused before training.
  auto bad = t;
  bad.noise_dataset.name = "digits";
  bad.noise_dataset.params = flowlab::Params();
  CHECK(flowlab::test::message_of<flowlab::Error>([&] { flowlab::run_trial(bad, registry(), "cpu"); }) ==
        "model.noise: dataset/digits gives samples of shape [1, 8, 8], but data (dataset/moons) gives [2]");
}

TEST_CASE("optimal_assignment (shortest augmenting paths) matches the network simplex; the cost in high dimensions",
          "[coupling]") {
  torch::manual_seed(11);
  for (const auto& [n, d] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {7, 2}, {64, 2}, {300, 2}, {128, 784}}) {
    INFO(n << " points in " << d << "D");
    const at::Tensor x0 = at::randn({n, d}, at::kDouble), x1 = at::randn({n, d}, at::kDouble) + 0.5;
    const at::Tensor cost = flowlab::squared_euclidean_cost(x0, x1);
    // The GEMM form (d > 8) against the differences formed directly.
    const at::Tensor direct = (x0.unsqueeze(1) - x1.unsqueeze(0)).pow(2).sum(2);
    CHECK(((cost - direct).abs() / direct).max().item<double>() < 1e-12);
    const at::Tensor perm = flowlab::optimal_assignment(cost, "test");
    CHECK(at::equal(std::get<0>(perm.sort()), at::arange(n, at::kLong)));  // a permutation
    const double assigned = cost.gather(1, perm.unsqueeze(1)).sum().item<double>();
    CHECK(assigned / double(n) == Approx(flowlab::exact_transport(cost, "test").cost).epsilon(1e-9));
  }
  // Every assignment optimal (equal costs): still a permutation. Not square: an error that says so.
  const at::Tensor flat = flowlab::optimal_assignment(at::ones({5, 5}, at::kDouble), "test");
  CHECK(at::equal(std::get<0>(flat.sort()), at::arange(5, at::kLong)));
  CHECK(flowlab::test::message_of<flowlab::Error>([] { flowlab::optimal_assignment(at::ones({2, 3}), "coupling/x"); }) ==
        "coupling/x: an assignment needs a square cost matrix, got 2 x 3");
}

TEST_CASE("optimal_assignment: the AVX2 and the portable search give the same permutation", "[coupling]") {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx2")) SKIP("this CPU has no AVX2");
  torch::manual_seed(5);
  // Sizes that are and are not multiples of the SIMD width (padded columns), clustered and plain Gaussian points,
  // and integer costs with many ties.
  for (const int64_t n : {1, 3, 8, 13, 64, 100, 256}) {
    INFO(n << " points");
    const at::Tensor centres = at::randn({8, 2}, at::kDouble) * 3;
    const at::Tensor x0 = centres.index_select(0, at::randint(8, {n}, at::kLong)) + 0.2 * at::randn({n, 2}, at::kDouble);
    for (const at::Tensor& cost : {flowlab::squared_euclidean_cost(x0, at::randn({n, 2}, at::kDouble)),
                                   at::randint(4, {n, n}, at::kDouble)}) {
      const at::Tensor fast = flowlab::optimal_assignment(cost, "test", flowlab::AssignmentKernel::avx2);
      const at::Tensor plain = flowlab::optimal_assignment(cost, "test", flowlab::AssignmentKernel::scalar);
      CHECK(at::equal(fast, plain));
      CHECK(at::equal(fast, flowlab::optimal_assignment(cost, "test")));
      CHECK(cost.gather(1, fast.unsqueeze(1)).sum().item<double>() / double(n) ==
            Approx(flowlab::exact_transport(cost, "test").cost).epsilon(1e-12));
    }
  }
#else
  CHECK(flowlab::test::message_of<flowlab::Error>([] {
          flowlab::optimal_assignment(at::ones({2, 2}), "test", flowlab::AssignmentKernel::avx2);
        }) == "optimal_assignment: AVX2 is an x86-64 instruction set");
#endif
}

TEST_CASE("optimal_assignment: costs that float32 cannot tell apart are solved exactly in float64", "[coupling]") {
  // 1e4 plus squared distances of order 1e-6: float32 (spacing about 1e-3 at 1e4) sees every cost as the same, so
  // its search returns an arbitrary permutation; the float64 duals must free rows and re-pair them to the optimum.
  torch::manual_seed(3);
  for (const int64_t n : {5, 64, 200}) {
    INFO(n << " points");
    const at::Tensor fine = flowlab::squared_euclidean_cost(at::randn({n, 2}, at::kDouble), at::randn({n, 2}, at::kDouble)) * 1e-6;
    const at::Tensor cost = fine + 1e4;
    const double optimum = flowlab::exact_transport(fine, "test").cost * double(n);
    std::vector<flowlab::AssignmentKernel> kernels{flowlab::AssignmentKernel::scalar, flowlab::AssignmentKernel::best};
    for (const auto kernel : kernels) {
      const at::Tensor perm = flowlab::optimal_assignment(cost, "test", kernel);
      CHECK(at::equal(std::get<0>(perm.sort()), at::arange(n, at::kLong)));
      CHECK(fine.gather(1, perm.unsqueeze(1)).sum().item<double>() == Approx(optimum).epsilon(1e-9));
    }
    CHECK(at::equal(flowlab::optimal_assignment(cost, "test", flowlab::AssignmentKernel::scalar),
                    flowlab::optimal_assignment(cost, "test")));
    CHECK(fine.diagonal().sum().item<double>() > optimum * (1 + 1e-6));  // the arbitrary pairing is far off
  }
}

TEST_CASE("optimal_assignment and exact_transport refuse NaN and Inf costs, wherever they sit", "[coupling]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const double bad : {nan, inf, -inf}) {
    for (const int64_t at : {int64_t(0), int64_t(37), int64_t(99)}) {
      INFO(bad << " at " << at);
      at::Tensor cost = at::rand({10, 10}, at::kDouble);
      cost.view({-1})[at] = bad;
      CHECK(flowlab::test::message_of<flowlab::Error>([&] { flowlab::optimal_assignment(cost, "coupling/minibatch_ot"); }) ==
            "coupling/minibatch_ot: the cost matrix holds NaN or Inf");
      CHECK(flowlab::test::message_of<flowlab::Error>([&] { flowlab::exact_transport(cost, "metric/w2"); }) ==
            "metric/w2: the cost matrix holds NaN or Inf");
    }
  }
  // The largest finite numbers are not mistaken for Inf.
  const at::Tensor big = at::full({3, 3}, std::numeric_limits<double>::max(), at::kDouble);
  CHECK(flowlab::optimal_assignment(big, "test").size(0) == 3);
}

TEST_CASE("optimal_assignment: rows that all prefer the same columns still get a permutation", "[coupling]") {
  // c_ij = j: column reduction assigns one row only, every other row competes for the same cheap columns; every
  // permutation is optimal and costs 0 + 1 + ... + 199.
  const int64_t n = 200;
  const at::Tensor cost = at::arange(n, at::kDouble).unsqueeze(0).repeat({n, 1});
  const at::Tensor perm = flowlab::optimal_assignment(cost, "test");
  CHECK(at::equal(std::get<0>(perm.sort()), at::arange(n, at::kLong)));
  CHECK(cost.gather(1, perm.unsqueeze(1)).sum().item<double>() == double(n * (n - 1) / 2));
}
