// The typed error hierarchy: every message names the plugin (kind/name), the file or parameter, and the choices.
#pragma once

#include <stdexcept>
#include <string>

#include "flowlab/export.hpp"

namespace flowlab {

/// Base of every error flowlab raises on purpose.
class FLOWLAB_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;
};

/// A plugin parameter that is unknown, ill-typed or out of range ("solver/rk4: parameter 'steps' ...").
class FLOWLAB_API ParamError : public Error {
 public:
  /// The message is "<plugin>: parameter '<param>' <what>".
  ParamError(const std::string& plugin, const std::string& param, const std::string& what);
  ~ParamError() override;
  /// The plugin, "kind/name".
  const std::string& plugin() const { return plugin_; }
  /// The parameter's name.
  const std::string& param() const { return param_; }

 private:
  std::string plugin_, param_;
};

/// No plugin of that kind/name; the message lists the valid names.
class FLOWLAB_API PluginNotFoundError : public Error {
 public:
  using Error::Error;
  ~PluginNotFoundError() override;
};

/// A library built against another plugin API version; names the file and both versions.
class FLOWLAB_API ApiVersionError : public Error {
 public:
  using Error::Error;
  ~ApiVersionError() override;
};

/// Two libraries declare the same kind/name; names both files.
class FLOWLAB_API DuplicatePluginError : public Error {
 public:
  using Error::Error;
  ~DuplicatePluginError() override;
};

/// A library that cannot be read or loaded, or lacks its entry point; names the path and the loader's message.
class FLOWLAB_API LibraryLoadError : public Error {
 public:
  using Error::Error;
  ~LibraryLoadError() override;
};

/// A plugin's factory threw something other than a ParamError.
class FLOWLAB_API CreateError : public Error {
 public:
  using Error::Error;
  ~CreateError() override;
};

/// An ODE solve that cannot go on: NaN/Inf from the field, step size underflow, too many steps.
class FLOWLAB_API SolverError : public Error {
 public:
  using Error::Error;
  ~SolverError() override;
};

}  // namespace flowlab
