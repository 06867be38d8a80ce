// Declaring a plugin: the common base class and the FLOWLAB_PLUGIN / FLOWLAB_PARAM macros.
//
// A plugin is one .cpp file: an Options struct, the implementation, and one FLOWLAB_PLUGIN line at the
// bottom. The macro exports two things (LLVM's PassPlugin.h pattern, one plain record per plugin):
//  * a C string in the ELF section `flowlab_plugins` holding API version, kind, name, version, description
//    and the parameter schema. The registry reads it from the file, so listing runs no plugin code;
//  * an extern "C" factory `flowlab_create_<kind>_<name>(const flowlab::Params&)`, called only by create().
// One library may hold any number of plugins.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "flowlab/errors.hpp"
#include "flowlab/export.hpp"
#include "flowlab/params.hpp"

/// The plugin ABI version. Bump it whenever an installed SDK header's declarations change, and record the new
/// hash in framework/sdk/api_versions.txt (tests/test_api_version.cpp fails until both are done).
#define FLOWLAB_API_VERSION 9

namespace flowlab {

/// Base of every plugin object, so one factory signature serves every kind.
class FLOWLAB_API Plugin {
 public:
  virtual ~Plugin();
};

/// Each kind's header adds `using <kind> = <Interface>;` here, so FLOWLAB_PLUGIN can check the class.
namespace kinds {}

/// The plugin kinds, in the order listings use: the one list the registry, the CLI and the docs read.
FLOWLAB_API const std::vector<std::string>& plugin_kinds();

}  // namespace flowlab

#define FLOWLAB_STRINGIFY_(x) #x
#define FLOWLAB_STRINGIFY(x) FLOWLAB_STRINGIFY_(x)

/// One parameter in a plugin's schema. `type` is one of bool, int, float, string, int_list, float_list or
/// enum(a|b|c); `default_text` is a string literal ("10", "1e-5", "silu", "1,2,2"); `doc` says what it means.
#define FLOWLAB_PARAM(name, type, default_text, doc) #name "\x1d" #type "\x1d" default_text "\x1d" doc "\x1e"

/// The raw record; FLOWLAB_PLUGIN fills in the current API version. Exposed for the registry's tests.
#define FLOWLAB_PLUGIN_RECORD(api, kind, name, cls, version, description, ...)                         \
  extern "C" __attribute__((used, visibility("default"), section("flowlab_plugins")))                  \
  const char flowlab_info_##kind##_##name[] =                                                          \
      "\x02"                                                                                           \
      "FLOWLAB\x1f" FLOWLAB_STRINGIFY(api) "\x1f" #kind "\x1f" #name "\x1f" version "\x1f" description \
                                           "\x1f" __VA_ARGS__;                                         \
  extern "C" __attribute__((visibility("default"))) ::flowlab::Plugin* flowlab_create_##kind##_##name( \
      const ::flowlab::Params& params) {                                                               \
    return new cls(params);                                                                            \
  }

/// Declares plugin `kind/name`, implemented by class `cls` (constructible from `const flowlab::Params&`).
/// Example: FLOWLAB_PLUGIN(solver, rk4, Rk4Solver, "1.0.0", "classic RK4",
///                         FLOWLAB_PARAM(steps, int, "10", "number of uniform steps"))
#define FLOWLAB_PLUGIN(kind, name, cls, version, description, ...)                                            \
  static_assert(std::is_base_of<::flowlab::kinds::kind, cls>::value,                                          \
                "FLOWLAB_PLUGIN(" #kind ", " #name "): " #cls " does not implement the " #kind " interface"); \
  FLOWLAB_PLUGIN_RECORD(FLOWLAB_API_VERSION, kind, name, cls, version, description, "" __VA_ARGS__)
