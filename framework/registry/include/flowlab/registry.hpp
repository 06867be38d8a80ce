// The plugin registry: scans directories, lists plugins without running their code, describes and creates them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowlab/params.hpp"
#include "flowlab/plugin.hpp"

namespace boost::dll {
class shared_library;
}

namespace flowlab {

/// What a plugin declares in its FLOWLAB_PLUGIN record, plus the file it came from.
struct FLOWLAB_API PluginInfo {
  int api_version = 0;
  std::string kind, name, version, description;
  std::vector<ParamSpec> params;
  std::string file;
  std::string shadowed_by;  ///< for a plugin overridden by one in a later search location: that one's file
  std::string key() const { return kind + "/" + name; }
};

/// Parses the records found in one library's `flowlab_plugins` section. Throws flowlab::Error on a
/// malformed record.
FLOWLAB_API std::vector<PluginInfo> parse_plugin_records(const std::string& section, const std::string& file);

class FLOWLAB_API Registry {
 public:
  /// Scans, in order: the default directory (when `default_dirs`: the build's plugin directory for a flowlab
  /// run from its build tree, <prefix>/lib/flowlab/plugins for an installed one, never both), each directory in
  /// $FLOWLAB_PLUGIN_PATH (colon-separated), then `extra_dirs` (--plugin-path). A plugin found again in a later
  /// directory shadows the earlier one (a note says so); twice in the same directory is a duplicate (an error
  /// when it is created).
  explicit Registry(const std::vector<std::string>& extra_dirs = {}, bool default_dirs = true);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::vector<std::string>& directories() const { return dirs_; }
  /// Plugins of one kind (or all, for ""), sorted by kind then name. Runs no plugin code. With
  /// `include_shadowed`, the shadowed records too (their shadowed_by set), each after the one that shadows it.
  std::vector<PluginInfo> list(const std::string& kind = "", bool include_shadowed = false) const;
  /// The record of kind/name; throws PluginNotFoundError listing the valid names, ApiVersionError or
  /// DuplicatePluginError.
  const PluginInfo& info(const std::string& kind, const std::string& name) const;
  /// Problems met while scanning (unreadable files, API mismatches, duplicates, bad records); none is fatal.
  const std::vector<std::string>& problems() const { return problems_; }
  /// Plugins that shadow others, one line each ("solver/rk4: /x/librk4.so shadows /build/plugins/...").
  const std::vector<std::string>& notes() const { return notes_; }

  /// `raw` checked against the plugin's schema, with defaults filled in.
  Params resolve(const std::string& kind, const std::string& name, const Params& raw = Params()) const;

  /// Creates kind/name as T. The object keeps its library loaded until it is destroyed.
  template <class T>
  std::shared_ptr<T> create(const std::string& kind, const std::string& name, const Params& raw = Params()) const {
    std::shared_ptr<boost::dll::shared_library> lib;
    Plugin* p = create_raw(kind, name, raw, lib);
    T* typed = dynamic_cast<T*>(p);
    if (!typed) {
      delete p;
      throw CreateError(kind + "/" + name + ": the object does not implement the " + kind + " interface");
    }
    // Built from T* so that enable_shared_from_this bases (torch::nn::Module) are wired up. Boost.DLL
    // tutorial 8: the deleter owns the library, so no object outlives its code.
    return std::shared_ptr<T>(typed, [lib](T* q) { delete q; });
  }

 private:
  void scan_directory(const std::string& dir, size_t location);
  void scan_file(const std::string& file, size_t location);
  std::shared_ptr<boost::dll::shared_library> load(const std::string& file) const;
  /// Runs the factory; `lib` receives the library the object needs. The caller owns the result.
  Plugin* create_raw(const std::string& kind, const std::string& name, const Params& raw,
                     std::shared_ptr<boost::dll::shared_library>& lib) const;

  std::vector<std::string> dirs_;
  std::vector<std::string> problems_, notes_;
  std::map<std::string, std::vector<PluginInfo>> plugins_;   // key -> records (more than one: duplicate)
  std::map<std::string, size_t> location_of_;                // key -> index in dirs_ of its records
  std::map<std::string, std::vector<PluginInfo>> shadowed_;  // key -> records shadowed by a later directory
  std::map<std::string, PluginInfo> wrong_api_;              // key -> record built for another API
  mutable std::mutex mutex_;
  // Loaded libraries stay loaded while the registry lives: validating a sweep creates and drops thousands of
  // plugin objects, and a dlopen/dlclose per object cost about 40 ms each (relocations against LibTorch).
  mutable std::map<std::string, std::shared_ptr<boost::dll::shared_library>> libraries_;
};

}  // namespace flowlab
