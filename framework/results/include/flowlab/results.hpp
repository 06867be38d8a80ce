// HDF5 results: one file per trial, written under a temporary name, fsync'ed and renamed, merged into one experiment
// file (written the same way), so a kill at any moment leaves every file readable. An HDF5 error names what failed
// and the library's own description (from its error stack); every HDF5 handle is released on every path.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

/// Writes /trials/<id> (attributes, among them `config_hash`; train/ datasets; eval table) to `path` atomically and
/// durably. Throws flowlab::Error ("HDF5: <what>: <the library's description>") when HDF5 fails.
FLOWLAB_API void write_trial_file(const std::string& path, const TrialConfig& trial, const TrialResult& result);

/// What identifies a trial file: the full trial id (its group name), its status and error, and the hash of the
/// configuration it was run with ("" in files written before config_hash existed).
struct TrialFileInfo {
  std::string id, status, error, config_hash;
};

/// The identity of a trial file, or nullopt if the file is absent or unreadable.
FLOWLAB_API std::optional<TrialFileInfo> read_trial_file(const std::string& path);

/// The status attribute of a finished trial file, or nullopt if the file is absent or unreadable.
FLOWLAB_API std::optional<std::string> trial_file_status(const std::string& path);

/// The experiment name an existing experiment file was written for (its `experiment_name` attribute), or nullopt
/// when `path` is not a flowlab experiment file (not HDF5, or HDF5 without that attribute).
FLOWLAB_API std::optional<std::string> experiment_file_name(const std::string& path);

/// A trial file that could not be merged: the file, the trial id when it could be read, and why.
struct MergeProblem {
  std::string file, id, error;
};

/// Builds the experiment file from the trial files given: root attributes, /trials/<id> copied from each file (the id
/// is read from the file) and /summary with one row per merged trial, in sweep order. Files of ids that are not in
/// the experiment, or whose config_hash differs from the trial's, are left out. A file that cannot be read or copied
/// is left out and returned as a problem; the others are merged. Written to `output`.tmp, fsync'ed and renamed over
/// `output`; throws flowlab::Error when the experiment file itself cannot be written.
FLOWLAB_API std::vector<MergeProblem> merge_experiment(const std::string& output, const Experiment& experiment,
                                                       const std::vector<std::string>& trial_files);

}  // namespace flowlab
