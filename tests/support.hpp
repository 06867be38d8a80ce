// Helpers shared by the Catch2 tests: the default registry, exception messages, tensor norms.
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <string>

#include "flowlab/registry.hpp"

namespace flowlab::test {

/// The registry over the build's plugin directory, scanned once per test process.
inline const Registry& registry() {
  static const Registry reg;
  return reg;
}

/// The message of the E that f throws; fails the test if it throws nothing.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return "";
}

/// max |a| over all elements.
inline double max_abs(const at::Tensor& a) { return a.abs().max().item<double>(); }

}  // namespace flowlab::test
