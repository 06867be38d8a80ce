// The training stages' names (see records.hpp).
#include "flowlab/records.hpp"

#include <fmt/format.h>

#include "flowlab/errors.hpp"

namespace flowlab {

std::string stage_name(Stage stage) {
  switch (stage) {
    case Stage::base: return "base";
    case Stage::reflow: return "reflow";
    case Stage::distill: return "distill";
  }
  throw Error(fmt::format("unknown training stage {}", static_cast<int>(stage)));
}

const std::vector<EvalColumn>& eval_columns() {
  static const std::vector<EvalColumn> kColumns = {
      {"round", &EvalRow::round},
      {"train_step", &EvalRow::train_step},
      {"solver", &EvalRow::solver, 32},
      {"label", &EvalRow::label, 64},
      {"steps", &EvalRow::steps},
      {"rtol", &EvalRow::rtol},
      {"atol", &EvalRow::atol},
      {"nfe", &EvalRow::nfe},
      {"network_calls", &EvalRow::network_calls},
      {"accepted_steps", &EvalRow::accepted},
      {"rejected_steps", &EvalRow::rejected},
      {"seconds", &EvalRow::seconds},
      {"samples_per_s", &EvalRow::samples_per_s},
      {"straightness", &EvalRow::straightness},
      {"error", &EvalRow::error, 16},
  };
  return kColumns;
}

Stage stage_from_name(const std::string& name) {
  for (const Stage s : {Stage::base, Stage::reflow, Stage::distill})
    if (stage_name(s) == name) return s;
  throw Error(fmt::format("unknown training stage '{}' (base, reflow or distill)", name));
}

}  // namespace flowlab
