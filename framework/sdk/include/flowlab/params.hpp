// The neutral parameter map that carries a plugin's parameters from YAML or code, and its schema.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "flowlab/export.hpp"

namespace flowlab {

/// The types a plugin parameter may have; `enum` is a string restricted to listed choices.
enum class ParamType { Bool, Int, Float, String, Enum, IntList, FloatList };

/// One value in a parameter map. Strings are also accepted for every type and parsed against the schema,
/// because YAML scalars arrive as text.
using ParamValue =
    std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>>;

/// One entry of a plugin's parameter schema, as declared by FLOWLAB_PARAM.
struct FLOWLAB_API ParamSpec {
  std::string name;                    ///< the parameter's name
  ParamType type = ParamType::String;  ///< its type
  std::vector<std::string> choices;    ///< for Enum
  std::string default_text;            ///< the default, as written in the plugin
  std::string doc;                     ///< one line of documentation
  /// "int", "float", "enum(silu|relu)", ...
  std::string type_name() const;
};

/// Parses a type token from a schema ("int", "enum(a|b)"); throws flowlab::Error on an unknown one.
FLOWLAB_API ParamSpec parse_param_type(const std::string& token, ParamSpec spec);

/// Formats a value for messages and listings (1e-05, [1, 2], true).
FLOWLAB_API std::string to_string(const ParamValue& value);

/// A map from parameter name to value. After the registry resolves it against a schema, every parameter is
/// present with its declared type, so the typed getters below cannot fail for declared names.
class FLOWLAB_API Params {
 public:
  Params() = default;
  /// Empty parameters of `owner` ("solver/rk4"), named in messages.
  explicit Params(std::string owner) : owner_(std::move(owner)) {}

  /// Sets (or replaces) one value; returns *this.
  Params& set(const std::string& name, ParamValue value);
  /// Whether `name` has a value.
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  /// The value of `name`; throws ParamError ("<owner>: parameter '<name>' is not set") when it has none.
  const ParamValue& at(const std::string& name) const;
  /// Every value, by name.
  const std::map<std::string, ParamValue>& values() const { return values_; }
  /// Who these parameters belong to ("solver/rk4"), for messages.
  const std::string& owner() const { return owner_; }

  /// Typed getters: the value of a declared parameter of that type (ParamError naming the owner when it is
  /// absent or of another type).
  /// @{
  bool boolean(const std::string& name) const;
  std::int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;
  const std::string& str(const std::string& name) const;
  const std::vector<std::int64_t>& int_list(const std::string& name) const;
  const std::vector<double>& float_list(const std::string& name) const;
  /// @}

 private:
  template <class T>
  const T& typed(const std::string& name, const char* type) const;
  std::string owner_;
  std::map<std::string, ParamValue> values_;
};

/// Validates `raw` against `schema`: unknown names, wrong types and bad enum choices throw ParamError that
/// lists the known parameters with their types; missing ones get their defaults. `owner` is "kind/name".
FLOWLAB_API Params resolve_params(const std::string& owner, const std::vector<ParamSpec>& schema, const Params& raw);

}  // namespace flowlab
