// Where an experiment's per-trial files live, in one place: the trial directory beside the experiment file, and the
// names of each trial's result file, snapshot and checkpoints in it. Bounded and safe for any trial id. Used by the
// runner and the worker, by merging and by flowlab verify.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "flowlab/export.hpp"

namespace flowlab {

/// Characters of a trial id kept in its file names; the rest is represented by the hash.
constexpr size_t kFileIdPrefix = 80;
/// The stem of trial `id`'s file names: its first kFileIdPrefix characters with each character outside
/// [A-Za-z0-9._=,-] replaced by '_', then '-' and 8 hex digits of a hash of the full id. Bounded and safe for any id;
/// the full id is inside the file (the group name).
FLOWLAB_API std::string trial_file_stem(const std::string& id);

/// Where the per-trial files of the experiment written to `output` live: `output`.trials/.
FLOWLAB_API std::string trial_dir(const std::string& output);
/// The result file of trial `id`: trial_dir/<stem>.h5.
FLOWLAB_API std::string trial_file_path(const std::string& output, const std::string& id);
/// The snapshot of trial `id` that the runner writes for its worker: trial_dir/<stem>.trial.yaml.
FLOWLAB_API std::string trial_snapshot_path(const std::string& output, const std::string& id);
/// The checkpoint of trial `id` for configuration `hash`: trial_dir/<stem>.<hash>.ckpt. A changed configuration
/// never finds an old checkpoint.
FLOWLAB_API std::string checkpoint_path(const std::string& output, const std::string& id, const std::string& hash);
/// The checkpoints of trial `id` (and their temporaries) for any configuration other than `hash`.
FLOWLAB_API std::vector<std::string> stale_checkpoints(const std::string& output, const std::string& id,
                                                       const std::string& hash);

}  // namespace flowlab
