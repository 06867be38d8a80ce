// Parameter schema types, value parsing and resolution of a raw map against a plugin's schema.
#include "flowlab/params.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cctype>
#include <sstream>

#include "flowlab/errors.hpp"

namespace flowlab {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool parse_int(const std::string& text, std::int64_t& out) {
  const std::string s = trim(text);
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_float(const std::string& text, double& out) {
  const std::string s = trim(text);
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0') return false;
  out = v;
  return true;
}

bool parse_bool(const std::string& text, bool& out) {
  const std::string s = trim(text);
  if (s == "true" || s == "True" || s == "yes" || s == "on") return out = true, true;
  if (s == "false" || s == "False" || s == "no" || s == "off") return out = false, true;
  return false;
}

std::vector<std::string> split_list(const std::string& text) {
  std::string s = trim(text);
  if (!s.empty() && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  std::vector<std::string> out;
  if (trim(s).empty()) return out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(trim(item));
  return out;
}

std::string describe_value(const ParamValue& v) {
  static const char* kNames[] = {"bool", "int", "float", "string", "int list", "float list"};
  return fmt::format("{} {}", kNames[v.index()], to_string(v));
}

std::string known_list(const std::vector<ParamSpec>& schema) {
  if (schema.empty()) return "(known: none)";
  std::string s = "(known: ";
  for (size_t i = 0; i < schema.size(); ++i)
    s += fmt::format("{}{} {}", i ? ", " : "", schema[i].name, schema[i].type_name());
  return s + ")";
}

// Converts `v` to the spec's type; returns false if it cannot.
bool convert(const ParamSpec& spec, const ParamValue& v, ParamValue& out) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    switch (spec.type) {
      case ParamType::Bool: {
        bool b;
        if (!parse_bool(*s, b)) return false;
        out = b;
        return true;
      }
      case ParamType::Int: {
        std::int64_t i;
        if (!parse_int(*s, i)) return false;
        out = i;
        return true;
      }
      case ParamType::Float: {
        double d;
        if (!parse_float(*s, d)) return false;
        out = d;
        return true;
      }
      case ParamType::String:
      case ParamType::Enum: out = trim(*s); return true;
      case ParamType::IntList: {
        std::vector<std::int64_t> xs;
        for (const auto& item : split_list(*s)) {
          std::int64_t i;
          if (!parse_int(item, i)) return false;
          xs.push_back(i);
        }
        out = xs;
        return true;
      }
      case ParamType::FloatList: {
        std::vector<double> xs;
        for (const auto& item : split_list(*s)) {
          double d;
          if (!parse_float(item, d)) return false;
          xs.push_back(d);
        }
        out = xs;
        return true;
      }
    }
    return false;
  }
  switch (spec.type) {
    case ParamType::Bool:
      if (!std::holds_alternative<bool>(v)) return false;
      out = v;
      return true;
    case ParamType::Int:
      if (!std::holds_alternative<std::int64_t>(v)) return false;
      out = v;
      return true;
    case ParamType::Float:
      if (const auto* i = std::get_if<std::int64_t>(&v)) {
        out = static_cast<double>(*i);
        return true;
      }
      if (!std::holds_alternative<double>(v)) return false;
      out = v;
      return true;
    case ParamType::String:
    case ParamType::Enum: return false;
    case ParamType::IntList:
      if (!std::holds_alternative<std::vector<std::int64_t>>(v)) return false;
      out = v;
      return true;
    case ParamType::FloatList:
      if (const auto* xs = std::get_if<std::vector<std::int64_t>>(&v)) {
        out = std::vector<double>(xs->begin(), xs->end());
        return true;
      }
      if (!std::holds_alternative<std::vector<double>>(v)) return false;
      out = v;
      return true;
  }
  return false;
}

}  // namespace

std::string ParamSpec::type_name() const {
  switch (type) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
    case ParamType::IntList: return "int_list";
    case ParamType::FloatList: return "float_list";
    case ParamType::Enum: {
      std::string s = "enum(";
      for (size_t i = 0; i < choices.size(); ++i) s += (i ? "|" : "") + choices[i];
      return s + ")";
    }
  }
  return "?";
}

ParamSpec parse_param_type(const std::string& token, ParamSpec spec) {
  // FLOWLAB_PARAM stringifies its type, so a formatter's spaces ("enum(a | b-c)" as "enum(a | b - c)") arrive here:
  // a type holds no space, so every space is dropped.
  std::string t;
  for (const char c : token)
    if (!std::isspace(static_cast<unsigned char>(c))) t += c;
  if (t == "bool") spec.type = ParamType::Bool;
  else if (t == "int") spec.type = ParamType::Int;
  else if (t == "float") spec.type = ParamType::Float;
  else if (t == "string") spec.type = ParamType::String;
  else if (t == "int_list") spec.type = ParamType::IntList;
  else if (t == "float_list") spec.type = ParamType::FloatList;
  else if (t.rfind("enum(", 0) == 0 && t.back() == ')') {
    spec.type = ParamType::Enum;
    spec.choices.clear();
    std::stringstream ss(t.substr(5, t.size() - 6));
    std::string c;
    while (std::getline(ss, c, '|')) spec.choices.push_back(trim(c));
    if (spec.choices.empty()) throw Error(fmt::format("parameter '{}': enum with no choices", spec.name));
  } else {
    throw Error(fmt::format("parameter '{}': unknown type '{}' (valid: bool, int, float, string, int_list, "
                            "float_list, enum(a|b|...))",
                            spec.name, t));
  }
  return spec;
}

std::string to_string(const ParamValue& value) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<std::int64_t>& xs) const {
      return fmt::format("[{}]", fmt::join(xs, ", "));
    }
    std::string operator()(const std::vector<double>& xs) const { return fmt::format("[{}]", fmt::join(xs, ", ")); }
  };
  return std::visit(Visitor{}, value);
}

Params& Params::set(const std::string& name, ParamValue value) {
  values_[name] = std::move(value);
  return *this;
}

const ParamValue& Params::at(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) throw ParamError(owner_.empty() ? "params" : owner_, name, "is not set");
  return it->second;
}

template <class T>
const T& Params::typed(const std::string& name, const char* type) const {
  const ParamValue& v = at(name);
  const T* p = std::get_if<T>(&v);
  if (!p)
    throw ParamError(owner_.empty() ? "params" : owner_, name,
                     fmt::format("is not a {} (got {})", type, describe_value(v)));
  return *p;
}

bool Params::boolean(const std::string& n) const { return typed<bool>(n, "bool"); }
std::int64_t Params::integer(const std::string& n) const { return typed<std::int64_t>(n, "int"); }
double Params::real(const std::string& n) const { return typed<double>(n, "float"); }
const std::string& Params::str(const std::string& n) const { return typed<std::string>(n, "string"); }
const std::vector<std::int64_t>& Params::int_list(const std::string& n) const {
  return typed<std::vector<std::int64_t>>(n, "int list");
}
const std::vector<double>& Params::float_list(const std::string& n) const {
  return typed<std::vector<double>>(n, "float list");
}

Params resolve_params(const std::string& owner, const std::vector<ParamSpec>& schema, const Params& raw) {
  Params out(owner);
  for (const auto& [name, value] : raw.values()) {
    const ParamSpec* spec = nullptr;
    for (const auto& s : schema)
      if (s.name == name) spec = &s;
    if (!spec) throw ParamError(owner, name, fmt::format("is unknown {}", known_list(schema)));
    ParamValue converted;
    if (!convert(*spec, value, converted))
      throw ParamError(
          owner, name,
          fmt::format("expects {}, got {} {}", spec->type_name(), describe_value(value), known_list(schema)));
    if (spec->type == ParamType::Enum) {
      const auto& s = std::get<std::string>(converted);
      bool ok = false;
      for (const auto& c : spec->choices) ok = ok || c == s;
      if (!ok)
        throw ParamError(owner, name, fmt::format("must be one of {}, got '{}'", fmt::join(spec->choices, ", "), s));
    }
    out.set(name, std::move(converted));
  }
  for (const auto& spec : schema) {
    if (out.has(spec.name)) continue;
    ParamValue converted;
    if (!convert(spec, ParamValue(spec.default_text), converted))
      throw ParamError(owner, spec.name,
                       fmt::format("has a default '{}' that is not a {}", spec.default_text, spec.type_name()));
    out.set(spec.name, std::move(converted));
  }
  return out;
}

}  // namespace flowlab
