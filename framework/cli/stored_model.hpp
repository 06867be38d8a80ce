// A trial's evaluated model rebuilt from its weights/ group (used by `sample` and `plot`).
#pragma once

#include <memory>

#include "flowlab/architecture.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"

namespace flowlab::cli {

/// Creates the stored architecture through the registry with its param:<name> values, builds it for the stored
/// event shape and condition (class count and attribute width read from the stored embedding weights; set in
/// `spec`), loads every stored tensor by its state-dict key and puts it in eval mode. Throws flowlab::Error for a
/// missing, extra or misshapen tensor.
std::shared_ptr<Architecture> rebuild_model(const Registry& registry, const StoredModel& stored,
                                            ArchitectureSpec& spec);

}  // namespace flowlab::cli
