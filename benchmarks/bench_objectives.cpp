// The training cost per step of each objective against flow_matching on the same network (issue 28): one step is
// draw + loss + backward on a 4 x 256 MLP, batch 512, 2D data. Each case times its objective and flow_matching in
// alternation in the same loop, so the ratio `vs_flow_matching` compares them under the same conditions; beside it,
// `calls_per_row` is what the objective declares (Objective::calls_per_row, the unit of the reports' train calls).
// flow_matching(step input) is flow matching on the network built with a step input: the cost of the unfused path
// alone (that network runs ATen's ops, which forward-mode AD needs), apart from the JVP.
#include <benchmark/benchmark.h>

#include <chrono>

#include "flowlab/objective.hpp"
#include "flowlab/registry.hpp"

namespace {

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

struct Setup {
  std::shared_ptr<flowlab::Path> path = registry().create<flowlab::Path>("path", "rectified");
  std::shared_ptr<flowlab::TimeSampler> sampler = registry().create<flowlab::TimeSampler>("time_sampler", "uniform");
  std::shared_ptr<flowlab::Weighting> weighting = registry().create<flowlab::Weighting>("weighting", "uniform");
  flowlab::ObjectiveContext ctx{path.get(), sampler.get(), weighting.get(), true, {}};
};

std::shared_ptr<flowlab::Architecture> mlp(bool step_input) {
  torch::manual_seed(0);
  auto m = registry().create<flowlab::Architecture>("architecture", "mlp",
                                                    flowlab::Params().set("width", int64_t{256}).set("depth", int64_t{4}));
  m->build({{2}, 0, 0, step_input});
  return m;
}

double step_seconds(const flowlab::Objective& o, flowlab::Architecture& model, const Setup& s) {
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor x0 = at::randn({512, 2}), x1 = at::randn({512, 2}) * 0.5 + 1;
  const auto d = o.draw(x0, x1, s.ctx);
  at::Tensor loss = o.loss(d, {}, model, s.ctx);
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  loss.backward();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_ObjectiveStep(benchmark::State& state, const std::string& name, bool fm_step_input) {
  at::set_num_threads(1);
  const Setup s;
  const auto objective = registry().create<flowlab::Objective>("objective", name == "flow_matching(step input)" ? "flow_matching" : name);
  const auto fm = registry().create<flowlab::Objective>("objective", "flow_matching");
  auto model = mlp(objective->step_input() || fm_step_input);
  auto fm_model = mlp(false);
  double mine = 0, base = 0;
  for (auto _ : state) {
    mine += step_seconds(*objective, *model, s);
    base += step_seconds(*fm, *fm_model, s);
  }
  state.counters["vs_flow_matching"] = mine / base;
  state.counters["calls_per_row"] = objective->calls_per_row();
  state.counters["ms_per_step"] = 1e3 * mine / double(state.iterations());
}

BENCHMARK_CAPTURE(BM_ObjectiveStep, flow_matching_step_input, std::string("flow_matching(step input)"), true)
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_ObjectiveStep, meanflow, std::string("meanflow"), false)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_ObjectiveStep, shortcut, std::string("shortcut"), false)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_ObjectiveStep, consistency_fm, std::string("consistency_fm"), false)
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
