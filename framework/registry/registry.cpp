// Registry: reads plugin records from ELF sections (libelf), loads libraries with Boost.DLL on create().
#include "flowlab/registry.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cerrno>
#include <cstring>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <sstream>

#include "flowlab/errors.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

constexpr char kSection[] = "flowlab_plugins";
constexpr char kMagic[] = "\x02"
                          "FLOWLAB";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) out.push_back(cur), cur.clear();
    else cur += c;
  }
  out.push_back(cur);
  return out;
}

// Reads one section of an ELF file without loading it. Returns false with `error` set if the file is no ELF.
bool read_section(const std::string& file, const char* name, std::string& content, bool& found, std::string& error) {
  found = false;
  if (elf_version(EV_CURRENT) == EV_NONE) return error = "libelf initialisation failed", false;
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return error = std::strerror(errno), false;
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  bool ok = false;
  size_t shstrndx = 0;
  if (!elf || elf_kind(elf) != ELF_K_ELF) {
    error = fmt::format("not an ELF shared library ({})", elf_errmsg(-1) ? elf_errmsg(-1) : "unknown format");
  } else if (elf_getshdrstrndx(elf, &shstrndx) != 0) {
    error = fmt::format("unreadable ELF section table ({})", elf_errmsg(-1));
  } else {
    ok = true;
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr)) continue;
      const char* n = elf_strptr(elf, shstrndx, shdr.sh_name);
      if (!n || std::strcmp(n, name) != 0) continue;
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (data && data->d_buf) content.assign(static_cast<const char*>(data->d_buf), data->d_size);
      found = true;
    }
  }
  if (elf) elf_end(elf);
  ::close(fd);
  return ok;
}

std::string join_names(const std::vector<std::string>& names) {
  return names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

std::vector<PluginInfo> parse_plugin_records(const std::string& section, const std::string& file) {
  std::vector<PluginInfo> out;
  for (const std::string& rec : split(section, '\0')) {
    if (rec.empty()) continue;  // alignment padding between records
    if (rec.rfind(kMagic, 0) != 0) throw Error(fmt::format("{}: malformed plugin record (no magic)", file));
    const auto fields = split(rec.substr(std::strlen(kMagic) + 1), '\x1f');
    if (fields.size() != 6) throw Error(fmt::format("{}: malformed plugin record ({} fields)", file, fields.size()));
    PluginInfo info;
    info.file = file;
    try {
      info.api_version = std::stoi(fields[0]);
    } catch (const std::exception&) {
      throw Error(fmt::format("{}: malformed plugin record (API version '{}')", file, fields[0]));
    }
    info.kind = fields[1];
    info.name = fields[2];
    info.version = fields[3];
    info.description = fields[4];
    for (const std::string& p : split(fields[5], '\x1e')) {
      if (p.empty()) continue;
      const auto parts = split(p, '\x1d');
      if (parts.size() != 4) throw Error(fmt::format("{}: {}: malformed parameter record", file, info.key()));
      ParamSpec spec;
      spec.name = parts[0];
      spec.default_text = parts[2];
      spec.doc = parts[3];
      try {
        spec = parse_param_type(parts[1], spec);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}: {}", file, info.key(), e.what()));
      }
      info.params.push_back(spec);
    }
    out.push_back(std::move(info));
  }
  return out;
}

Registry::Registry(const std::vector<std::string>& extra_dirs, bool default_dirs) {
  if (default_dirs) {
    // One default directory: the build's, when this library runs from the build tree; else the installed layout
    // <prefix>/lib/libflowlab_registry.so -> <prefix>/lib/flowlab/plugins. An installed flowlab never scans the
    // build tree it came from.
    boost::system::error_code ec;
    const auto here = boost::dll::this_line_location(ec);
    const fs::path lib_dir = ec ? fs::path() : fs::path(here.parent_path().string());
#if defined(FLOWLAB_BUILD_PLUGIN_DIR) && defined(FLOWLAB_BUILD_LIB_DIR)
    std::error_code same_ec;
    if (!ec && fs::equivalent(lib_dir, FLOWLAB_BUILD_LIB_DIR, same_ec)) {
      dirs_.push_back(FLOWLAB_BUILD_PLUGIN_DIR);
    } else
#endif
        if (!ec) {
      const std::string installed = (lib_dir / "flowlab" / "plugins").string();
      if (fs::is_directory(installed)) dirs_.push_back(installed);
    }
  }
  if (const char* env = std::getenv("FLOWLAB_PLUGIN_PATH"))
    for (const auto& d : split(env, ':'))
      if (!d.empty()) dirs_.push_back(d);
  for (const auto& d : extra_dirs) dirs_.push_back(d);
  for (size_t i = 0; i < dirs_.size(); ++i) scan_directory(dirs_[i], i);
}

Registry::~Registry() = default;

void Registry::scan_directory(const std::string& dir, size_t location) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    problems_.push_back(fmt::format("{}: plugin directory does not exist", dir));
    return;
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".so" && entry.is_regular_file()) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());  // deterministic: duplicates always keep the same winner
  for (const auto& f : files) scan_file(f, location);
}

void Registry::scan_file(const std::string& file, size_t location) {
  std::string section, error;
  bool found = false;
  if (!read_section(file, kSection, section, found, error)) {
    problems_.push_back(fmt::format("{}: cannot read library: {}; skipped", file, error));
    return;
  }
  if (!found) return;  // a library without flowlab plugins
  std::vector<PluginInfo> records;
  try {
    records = parse_plugin_records(section, file);
  } catch (const Error& e) {
    problems_.push_back(fmt::format("{}; skipped", e.what()));
    return;
  }
  // The section's order follows the linker; kind/name order makes notes and problems the same on every build.
  std::sort(records.begin(), records.end(), [](const PluginInfo& a, const PluginInfo& b) { return a.key() < b.key(); });
  const auto& kinds = plugin_kinds();
  for (auto& info : records) {
    if (std::find(kinds.begin(), kinds.end(), info.kind) == kinds.end()) {
      problems_.push_back(fmt::format("{}: plugin {} has unknown kind '{}' (valid: {}); skipped", file, info.key(),
                                      info.kind, join_names(kinds)));
      continue;
    }
    if (info.api_version != FLOWLAB_API_VERSION) {
      problems_.push_back(fmt::format("{}: plugin {} was built for plugin API version {}, but this flowlab supports "
                                      "version {}; skipped",
                                      file, info.key(), info.api_version, FLOWLAB_API_VERSION));
      wrong_api_.emplace(info.key(), info);
      continue;
    }
    auto& slot = plugins_[info.key()];
    if (!slot.empty() && location_of_[info.key()] != location) {
      // A later search location overrides an earlier one: the user's own version of a plugin.
      notes_.push_back(fmt::format("{}: {} shadows {}", info.key(), file, slot.front().file));
      for (auto& old : slot) old.shadowed_by = file;
      auto& hidden = shadowed_[info.key()];
      hidden.insert(hidden.end(), slot.begin(), slot.end());
      slot.clear();
    } else if (!slot.empty()) {
      problems_.push_back(
          fmt::format("duplicate plugin {}: declared in {} and in {}", info.key(), slot.front().file, file));
    }
    location_of_[info.key()] = location;
    slot.push_back(std::move(info));
  }
}

std::vector<PluginInfo> Registry::list(const std::string& kind, bool include_shadowed) const {
  std::vector<PluginInfo> out;
  for (const auto& [key, records] : plugins_)
    if (kind.empty() || records.front().kind == kind) {
      out.push_back(records.front());
      const auto hidden = shadowed_.find(key);
      if (include_shadowed && hidden != shadowed_.end())
        for (auto it = hidden->second.rbegin(); it != hidden->second.rend(); ++it) out.push_back(*it);
    }
  const auto& kinds = plugin_kinds();
  auto rank = [&](const std::string& k) { return std::find(kinds.begin(), kinds.end(), k) - kinds.begin(); };
  std::stable_sort(out.begin(), out.end(), [&](const PluginInfo& a, const PluginInfo& b) {
    return rank(a.kind) != rank(b.kind) ? rank(a.kind) < rank(b.kind) : a.name < b.name;
  });
  return out;
}

const PluginInfo& Registry::info(const std::string& kind, const std::string& name) const {
  const auto& kinds = plugin_kinds();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    throw PluginNotFoundError(fmt::format("unknown plugin kind '{}' (valid: {})", kind, join_names(kinds)));
  const std::string key = kind + "/" + name;
  const auto it = plugins_.find(key);
  if (it == plugins_.end()) {
    const auto bad = wrong_api_.find(key);
    if (bad != wrong_api_.end())
      throw ApiVersionError(
          fmt::format("{}: {} was built for plugin API version {}, but this flowlab supports version {}", key,
                      bad->second.file, bad->second.api_version, FLOWLAB_API_VERSION));
    std::vector<std::string> names;
    for (const auto& p : list(kind)) names.push_back(p.name);
    throw PluginNotFoundError(fmt::format("unknown {} '{}' (valid: {})", kind, name, join_names(names)));
  }
  if (it->second.size() > 1) {
    std::vector<std::string> files;
    for (const auto& r : it->second) files.push_back(r.file);
    throw DuplicatePluginError(fmt::format("duplicate plugin {}: declared in {}", key, fmt::join(files, " and in ")));
  }
  return it->second.front();
}

Params Registry::resolve(const std::string& kind, const std::string& name, const Params& raw) const {
  const PluginInfo& pi = info(kind, name);
  return resolve_params(pi.key(), pi.params, raw);
}

std::shared_ptr<boost::dll::shared_library> Registry::load(const std::string& file) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto lib = libraries_[file]) return lib;
  std::shared_ptr<boost::dll::shared_library> lib;
  try {
    // rtld_now: an unresolved symbol fails here, with the loader's message, not later inside a call.
    lib = std::make_shared<boost::dll::shared_library>(
        file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw LibraryLoadError(fmt::format("{}: cannot load library: {}", file, e.what()));
  }
  libraries_[file] = lib;
  return lib;
}

Plugin* Registry::create_raw(const std::string& kind, const std::string& name, const Params& raw,
                             std::shared_ptr<boost::dll::shared_library>& lib) const {
  const PluginInfo& pi = info(kind, name);
  const Params params = resolve_params(pi.key(), pi.params, raw);
  lib = load(pi.file);
  const std::string symbol = fmt::format("flowlab_create_{}_{}", kind, name);
  if (!lib->has(symbol))
    throw LibraryLoadError(fmt::format("{}: entry point '{}' not found in {}", pi.key(), symbol, pi.file));
  auto& factory = lib->get<Plugin*(const Params&)>(symbol);
  Plugin* raw_ptr = nullptr;
  try {
    raw_ptr = factory(params);
  } catch (const ParamError& e) {
    throw ParamError(e);  // copied here, while the library that threw it is still loaded
  } catch (const std::exception& e) {
    throw CreateError(fmt::format("{}: construction failed ({}): {}", pi.key(), pi.file, e.what()));
  } catch (...) {
    throw CreateError(fmt::format("{}: construction failed ({}): unknown exception", pi.key(), pi.file));
  }
  if (!raw_ptr) throw CreateError(fmt::format("{}: factory in {} returned null", pi.key(), pi.file));
  return raw_ptr;
}

}  // namespace flowlab
