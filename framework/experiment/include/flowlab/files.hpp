// Durable file replacement, in one place: every file the experiment layer publishes (trial results, the experiment
// file, checkpoints) is written under a temporary name, fsync'ed, renamed over its final name, and the directory is
// fsync'ed, so that after a crash (of the process or of the machine) a reader finds the old file or the whole new one.
#pragma once

#include <string>

#include "flowlab/export.hpp"

namespace flowlab {

/// fsync(tmp); rename(tmp, final) (atomic on POSIX); fsync(the directory of final). Throws flowlab::Error naming the
/// file and the system's message when any step fails; `tmp` is left in place then.
FLOWLAB_API void durable_rename(const std::string& tmp, const std::string& final_path);

/// fsync of one file or directory. Throws flowlab::Error naming it and the system's message.
FLOWLAB_API void fsync_path(const std::string& path);

}  // namespace flowlab
