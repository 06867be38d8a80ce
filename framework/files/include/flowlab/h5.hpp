// The HDF5 C API as flowlab's experiment layers use it, shared by integrity.cpp (verifying), results.cpp (writing) and
// report.cpp (reading): errors that carry HDF5's own description, and an RAII owner for every kind of identifier.
// Header-only (its users link HDF5 themselves) and not installed.
#pragma once

#include <fmt/format.h>
#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

#include "flowlab/errors.hpp"

namespace flowlab::h5 {

/// HDF5's description of the error on the current stack, outermost (the API call) first: the API call's description
/// and, when different, that of the innermost function, where the cause is (e.g. "unable to open file: name = ...,
/// errno = 21, error message = 'Is a directory'"). Call it right after the failed call: any other HDF5 call clears
/// the stack.
inline std::string error_stack() {
  std::vector<std::string> descs;
  auto walk = [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
    auto& out = *static_cast<std::vector<std::string>*>(data);
    std::string d = e->desc && *e->desc ? e->desc : (e->func_name ? std::string(e->func_name) + "() failed" : "");
    if (!d.empty()) out.push_back(d);
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &descs);
  if (descs.empty()) return "no description on HDF5's error stack";
  if (descs.size() == 1 || descs.front() == descs.back()) return descs.front();
  return descs.front() + ": " + descs.back();
}

[[noreturn]] inline void fail(const std::string& what) {
  throw Error(fmt::format("HDF5: {}: {}", what, error_stack()));
}

inline void check(herr_t status, const std::string& what) {
  if (status < 0) fail(what);
}

/// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype or attribute) and closes it with the matching
/// call. Predefined types (H5T_NATIVE_*) are never wrapped.
class H5Handle {
 public:
  H5Handle() = default;
  /// Takes `id`; throws the HDF5 error for `what` when id < 0.
  H5Handle(hid_t id, const std::string& what) : id_(id) {
    if (id_ < 0) fail(what);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(std::exchange(o.id_, -1)) {}
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) reset(), id_ = std::exchange(o.id_, -1);
    return *this;
  }
  ~H5Handle() { reset(); }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: used where the C API takes an hid_t
  /// Closes now and checks the result (for files: the final flush happens here).
  void close(const std::string& what) {
    const herr_t st = close_id(std::exchange(id_, -1));
    check(st, what);
  }

 private:
  static herr_t close_id(hid_t id) {
    switch (H5Iget_type(id)) {
      case H5I_FILE: return H5Fclose(id);
      case H5I_GROUP: return H5Gclose(id);
      case H5I_DATASET: return H5Dclose(id);
      case H5I_DATASPACE: return H5Sclose(id);
      case H5I_DATATYPE: return H5Tclose(id);
      case H5I_ATTR: return H5Aclose(id);
      default: return H5Idec_ref(id);
    }
  }
  void reset() {
    if (id_ >= 0) close_id(std::exchange(id_, -1));
  }
  hid_t id_ = -1;
};

/// Keeps HDF5 from printing its error stack while alive: flowlab reports errors itself.
struct Silence {
  Silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

}  // namespace flowlab::h5
