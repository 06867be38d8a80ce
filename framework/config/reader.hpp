// The experiment reader's private core (not installed): Reader, which reads one parsed YAML document and fails
// with "FILE:LINE:COL: KEY.PATH: what was expected", and the small helpers its messages use. The section tables
// (schema.hpp) and config.cpp read through it.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/dataset.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/solver.hpp"

namespace flowlab::schema {

/// The keys of a plugin given as a map: {name: ..., params: {...}}; a dataset's: {dataset: ..., params: {...}}.
inline const std::vector<std::string> kPluginKeys = {"name", "params"};
inline const std::vector<std::string> kDataKeys = {"dataset", "params"};

/// A number as YAML text in its shortest round-trip form (0.9, not 0.90000000000000002).
inline std::string number_text(double v) { return fmt::format("{}", v); }

inline std::string kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return fmt::format("'{}'", n.Scalar());
    default: return "an undefined value";
  }
}

inline std::string suggestion(const std::string& word, const std::vector<std::string>& valid) {
  const std::string near = nearest(word, valid);
  return near.empty() ? fmt::format("valid: {}", fmt::join(valid, ", "))
                      : fmt::format("did you mean '{}'? valid: {}", near, fmt::join(valid, ", "));
}

/// Reads one parsed experiment document; every error carries the file and the node's position.
class Reader {
 public:
  /// `datasets`: also create each dataset once (ranges, files, shapes); a worker reading its snapshot skips it,
  /// since it creates the dataset right after.
  Reader(std::string file, const Registry& reg, bool datasets = true)
      : file_(std::move(file)), reg_(reg), datasets_(datasets) {}

  /// Bounds on what one experiment may ask for (the top-level `limits:` section).
  ExperimentLimits limits;

  /// How many distinct plugin configurations were created to check them (each once, however many trials use it).
  size_t plugins_checked() const { return checked_.size(); }

  /// Whether solver/NAME chooses its own steps (Solver::adaptive()); one that does not must take `steps`.
  bool adaptive_solver(const std::string& name, const YAML::Node& at, const std::string& path) const {
    const auto it = adaptive_.find(name);
    if (it != adaptive_.end()) return it->second;
    const bool adaptive = reg_.create<Solver>("solver", name)->adaptive();
    const auto& specs = reg_.info("solver", name).params;
    if (!adaptive && std::none_of(specs.begin(), specs.end(), [](const ParamSpec& p) { return p.name == "steps"; }))
      fail(at, path,
           fmt::format("solver/{} is not adaptive, but has no parameter 'steps' to set its step count", name));
    return adaptive_.emplace(name, adaptive).first->second;
  }

  /// The event shape of a dataset configuration checked before (empty when datasets are not created).
  std::vector<int64_t> event_shape(const PluginChoice& p) const {
    const auto it = checked_.find(check_key(p));
    return it == checked_.end() ? std::vector<int64_t>() : it->second;
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& path, const std::string& what) const {
    const YAML::Mark m = at.Mark();
    throw ConfigError(fmt::format("{}:{}:{}: {}: {}", file_, m.line + 1, m.column + 1, path, what));
  }

  /// A mapping key as text; a key that is itself a mapping or a list is an error at its position.
  std::string key_text(const YAML::Node& key, const std::string& path) const {
    if (!key.IsScalar())
      fail(key, path.empty() ? "(top level)" : path,
           fmt::format("expected a plain key, got {} as a key", kind_name(key)));
    return key.Scalar();
  }

  void expect_map(const YAML::Node& n, const std::string& path) const {
    if (!n.IsMap()) fail(n, path, fmt::format("expected a mapping, got {}", kind_name(n)));
  }

  void check_keys(const YAML::Node& n, const std::string& path, const std::vector<std::string>& valid) const {
    expect_map(n, path);
    for (const auto& kv : n) {
      const std::string key = key_text(kv.first, path);
      if (std::find(valid.begin(), valid.end(), key) == valid.end())
        fail(kv.first, path.empty() ? key : path + "." + key,
             fmt::format("unknown key '{}' ({})", key, suggestion(key, valid)));
    }
  }

  template <class T>
  T scalar(const YAML::Node& n, const std::string& path, const char* expected) const {
    if (!n.IsScalar()) fail(n, path, fmt::format("expected {}, got {}", expected, kind_name(n)));
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(n, path, fmt::format("expected {}, got {}", expected, kind_name(n)));
    }
  }
  int64_t integer(const YAML::Node& n, const std::string& path, int64_t min) const {
    const auto v = scalar<int64_t>(n, path, "an integer");
    if (v < min) fail(n, path, fmt::format("expected an integer >= {}, got {}", min, v));
    return v;
  }
  int64_t integer(const YAML::Node& n, const std::string& path, int64_t min, int64_t max) const {
    const auto v = scalar<int64_t>(n, path, "an integer");
    if (v < min || v > max) fail(n, path, fmt::format("expected an integer in [{}, {}], got {}", min, max, v));
    return v;
  }
  double real(const YAML::Node& n, const std::string& path, double min, double max) const {
    const auto v = scalar<double>(n, path, "a number");
    if (!(v >= min && v <= max)) fail(n, path, fmt::format("expected a number in [{}, {}], got {}", min, max, v));
    return v;
  }
  std::string text(const YAML::Node& n, const std::string& path) const {
    return scalar<std::string>(n, path, "a string");
  }

  const Registry& registry() const { return reg_; }

  template <class T>
  std::shared_ptr<T> create(const std::string& kind, const PluginChoice& p) const {
    return reg_.create<T>(kind, p.name, p.params);
  }

  /// A plugin given as `name` or {name: ..., params: {...}} (datasets: {dataset: ..., params: ...}).
  PluginChoice plugin(const std::string& kind, const YAML::Node& n, const std::string& path,
                      const std::string& name_key = "name") const {
    // Nodes are bound at construction only: assigning a YAML::Node overwrites the node it refers to.
    const YAML::Node& cn = n;
    if (n.IsMap()) {
      check_keys(n, path, name_key == "name" ? kPluginKeys : kDataKeys);
      if (!cn[name_key]) fail(n, path, fmt::format("missing key '{}' (the {} plugin to use)", name_key, kind));
    }
    const YAML::Node name_node = n.IsMap() ? cn[name_key] : n;
    const YAML::Node params_node = n.IsMap() ? cn["params"] : YAML::Node();
    const std::string name = text(name_node, path + (n.IsMap() ? "." + name_key : ""));
    return plugin_with_params(kind, name, name_node, params_node, path);
  }

  PluginChoice plugin_with_params(const std::string& kind, const std::string& name, const YAML::Node& name_node,
                                  const YAML::Node& params_node, const std::string& path) const {
    auto [known, fresh] = names_.try_emplace(kind);
    std::vector<std::string>& names = known->second;
    if (fresh)
      for (const auto& p : reg_.list(kind)) names.push_back(p.name);
    if (std::find(names.begin(), names.end(), name) == names.end())
      fail(name_node, path, fmt::format("unknown {} '{}' ({})", kind, name, suggestion(name, names)));
    const PluginInfo& info = reg_.info(kind, name);
    Params raw(info.key());
    std::map<std::string, YAML::Node> where;
    if (params_node && !params_node.IsNull()) {
      expect_map(params_node, path + ".params");
      for (const auto& kv : params_node) {
        const std::string key = key_text(kv.first, path + ".params");
        where[key] = kv.second;
        if (kv.second.IsScalar()) {
          raw.set(key, kv.second.Scalar());
        } else if (kv.second.IsSequence()) {
          std::string joined;
          for (const auto& item : kv.second) {
            if (!item.IsScalar()) fail(item, path + ".params." + key, "expected a list of numbers");
            joined += (joined.empty() ? "" : ",") + item.Scalar();
          }
          raw.set(key, joined);
        } else {
          fail(kv.second, path + ".params." + key, fmt::format("expected a value, got {}", kind_name(kv.second)));
        }
      }
    }
    PluginChoice out{kind, name, info.version, Params()};
    try {
      out.params = resolve_params(info.key(), info.params, raw);
    } catch (const ParamError& e) {
      const bool known =
          std::any_of(info.params.begin(), info.params.end(), [&](const ParamSpec& p) { return p.name == e.param(); });
      if (!known && params_node)  // an unknown name: point at the key, or at the value where a sweep made the key
        for (const auto& kv : params_node)
          if (kv.first.as<std::string>() == e.param())
            fail(kv.first.Mark().is_null() ? kv.second : kv.first, path + ".params." + e.param(), e.what());
      const auto it = where.find(e.param());
      if (it == where.end()) {
        for (const auto& kv : params_node)
          if (kv.first.as<std::string>() == e.param()) fail(kv.first, path + ".params." + e.param(), e.what());
        fail(params_node ? params_node : name_node, path + ".params", e.what());
      }
      fail(it->second, path + ".params." + e.param(), e.what());
    }
    // Range checks live in the plugins' constructors: each distinct configuration is created once. Datasets too
    // (their files are read and parsed), unless this reader skips them.
    if (kind == "dataset" && !datasets_) return out;
    const std::string key = check_key(out);
    if (checked_.count(key)) return out;
    std::vector<int64_t> shape;
    try {
      const auto made = reg_.create<Plugin>(kind, name, out.params);
      if (kind == "dataset") shape = dynamic_cast<const Dataset&>(*made).event_shape();
    } catch (const ParamError& e) {
      const auto it = where.find(e.param());
      fail(it != where.end() ? it->second : name_node, path + ".params." + e.param(), e.what());
    } catch (const CreateError& e) {
      fail(name_node, path, plugin_message(e.what()));
    } catch (const Error& e) {
      fail(name_node, path, e.what());
    } catch (const std::exception& e) {
      fail(name_node, path, fmt::format("{}/{}: {}", kind, name, e.what()));
    }
    checked_.emplace(key, shape);
    return out;
  }

 private:
  static std::string check_key(const PluginChoice& p) {
    std::string k = p.kind + "/" + p.name;
    for (const auto& [key, value] : p.params.values()) k += "\x1f" + key + "=" + to_string(value);
    return k;
  }
  /// A plugin's own message from a CreateError ("KIND/NAME: construction failed (LIBRARY): MESSAGE"), without the
  /// library's path, which differs between machines.
  static std::string plugin_message(const std::string& what) {
    const size_t at = what.find(": construction failed (");
    const size_t end = at == std::string::npos ? at : what.find("): ", at);
    return end == std::string::npos ? what : what.substr(end + 3);
  }

  std::string file_;
  const Registry& reg_;
  bool datasets_ = true;
  mutable std::map<std::string, std::vector<int64_t>> checked_;    ///< check_key -> a dataset's event shape
  mutable std::map<std::string, std::vector<std::string>> names_;  ///< kind -> its plugins' names
  mutable std::map<std::string, bool> adaptive_;                   ///< solver name -> Solver::adaptive()
};

/// Writes plugin `p` under `key`: {name, version, params: {every parameter, defaults included}}.
inline void emit_plugin(YAML::Emitter& e, const std::string& key, const PluginChoice& p) {
  e << YAML::Key << key << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << p.name << YAML::Key << "version" << YAML::Value << p.version;
  e << YAML::Key << "params" << YAML::Value << YAML::BeginMap;
  for (const auto& [k, v] : p.params.values()) e << YAML::Key << k << YAML::Value << to_string(v);
  e << YAML::EndMap << YAML::EndMap;
}

}  // namespace flowlab::schema
