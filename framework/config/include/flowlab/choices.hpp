// The values that config keys implemented by the engine accept, listed here so that the config layer checks them
// without linking the engine: train.precision (precision.hpp runs them) and the metrics' `features` (features.hpp
// builds them).
#pragma once

#include <string>
#include <vector>

#include "flowlab/export.hpp"

namespace flowlab {

/// train.precision's values: {"fp32", "bf16", "tf32"}.
FLOWLAB_API const std::vector<std::string>& precisions();

/// The valid spec forms, for messages: {"raw", "builtin:digits", "builtin:fashion_mnist", "torchscript:PATH"}.
FLOWLAB_API const std::vector<std::string>& feature_extractor_forms();

}  // namespace flowlab
