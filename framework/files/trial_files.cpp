// The names of an experiment's per-trial files (see trial_files.hpp).
#include "flowlab/trial_files.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>

namespace fs = std::filesystem;

namespace flowlab {
namespace {

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

bool is_hex(const std::string& s) { return s.find_first_not_of("0123456789abcdef") == std::string::npos; }

}  // namespace

std::string trial_file_stem(const std::string& id) {
  std::string prefix = id.substr(0, kFileIdPrefix);
  for (char& c : prefix) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '=' || c == ',' || c == '-';
    if (!ok) c = '_';
  }
  const uint64_t h = fnv1a64(id);
  return fmt::format("{}-{:08x}", prefix, static_cast<uint32_t>(h ^ (h >> 32)));
}

std::string trial_dir(const std::string& output) { return output + ".trials"; }

std::string trial_file_path(const std::string& output, const std::string& id) {
  return trial_dir(output) + "/" + trial_file_stem(id) + ".h5";
}

std::string trial_snapshot_path(const std::string& output, const std::string& id) {
  return trial_dir(output) + "/" + trial_file_stem(id) + ".trial.yaml";
}

std::string checkpoint_path(const std::string& output, const std::string& id, const std::string& hash) {
  return trial_dir(output) + "/" + trial_file_stem(id) + "." + hash + ".ckpt";
}

std::vector<std::string> stale_checkpoints(const std::string& output, const std::string& id, const std::string& hash) {
  std::vector<std::string> stale;
  const std::string start = trial_file_stem(id) + ".";
  std::error_code ec;
  for (fs::directory_iterator it(trial_dir(output), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, start.size(), start) != 0) continue;
    std::string rest = name.substr(start.size());  // <16 hex>.ckpt or <16 hex>.ckpt.tmp
    if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, ".tmp") == 0) rest.resize(rest.size() - 4);
    if (rest.size() != 16 + 5 || rest.compare(16, 5, ".ckpt") != 0 || !is_hex(rest.substr(0, 16))) continue;
    if (rest.substr(0, 16) != hash) stale.push_back(it->path().string());
  }
  return stale;
}

}  // namespace flowlab
