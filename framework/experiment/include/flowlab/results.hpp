// HDF5 results: one file per trial, written under a temporary name and renamed, merged into one experiment file
// (also written under a temporary name and renamed), so a kill at any moment leaves every file readable.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

/// Writes /trials/<id> (attributes, train/ datasets, eval table) to `path` atomically.
FLOWLAB_API void write_trial_file(const std::string& path, const TrialConfig& trial, const TrialResult& result);

/// The status attribute of a finished trial file, or nullopt if the file is absent or unreadable.
FLOWLAB_API std::optional<std::string> trial_file_status(const std::string& path);

/// Builds the experiment file from the trial files that exist: root attributes, /trials/<id> copied from each,
/// and /summary with one row per trial. Written to `output`.tmp, then renamed over `output`.
FLOWLAB_API void merge_experiment(const std::string& output, const Experiment& experiment,
                                  const std::vector<std::string>& trial_files);

}  // namespace flowlab
