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

Stage stage_from_name(const std::string& name) {
  for (const Stage s : {Stage::base, Stage::reflow, Stage::distill})
    if (stage_name(s) == name) return s;
  throw Error(fmt::format("unknown training stage '{}' (base, reflow or distill)", name));
}

}  // namespace flowlab
