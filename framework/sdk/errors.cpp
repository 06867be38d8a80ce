// Out-of-line destructors give the error types one key function, so their type_info lives in libflowlab_sdk.
#include "flowlab/errors.hpp"

#include <fmt/format.h>

#include "flowlab/plugin.hpp"

namespace flowlab {

Error::~Error() = default;
ParamError::ParamError(const std::string& plugin, const std::string& param, const std::string& what)
    : Error(fmt::format("{}: parameter '{}' {}", plugin, param, what)), plugin_(plugin), param_(param) {}
ParamError::~ParamError() = default;
PluginNotFoundError::~PluginNotFoundError() = default;
ApiVersionError::~ApiVersionError() = default;
DuplicatePluginError::~DuplicatePluginError() = default;
LibraryLoadError::~LibraryLoadError() = default;
CreateError::~CreateError() = default;
SolverError::~SolverError() = default;
Plugin::~Plugin() = default;

const std::vector<std::string>& plugin_kinds() {
  static const std::vector<std::string> kKinds = {"path",         "weighting", "time_sampler", "noise",
                                                  "architecture", "solver",    "dataset",      "metric",
                                                  "coupling",     "time_grid", "objective"};
  return kKinds;
}

}  // namespace flowlab
