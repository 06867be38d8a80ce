// The values of the config keys that the engine implements (see choices.hpp).
#include "flowlab/choices.hpp"

namespace flowlab {

const std::vector<std::string>& precisions() {
  static const std::vector<std::string> all = {"fp32", "bf16", "tf32"};
  return all;
}

const std::vector<std::string>& feature_extractor_forms() {
  static const std::vector<std::string> forms = {"raw", "builtin:digits", "builtin:fashion_mnist", "torchscript:PATH"};
  return forms;
}

}  // namespace flowlab
